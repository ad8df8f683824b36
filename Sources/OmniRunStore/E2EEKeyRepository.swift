/// The channel keys of e2ee sandboxes, sealed by the server before they get here: the
/// store holds ciphertext only. A row lives as long as its sandbox.
public struct E2EEKeyRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    public func insert(sandboxID: String, sealedKey: String, at now: Int64) async throws {
        try await database.query(
            "INSERT INTO sandbox_e2ee_keys (sandbox_id, sealed_key, created_at) VALUES (?, ?, ?)",
            [.text(sandboxID), .text(sealedKey), .int(now)])
    }

    /// Every stored key: (sandbox id, sealed key).
    public func all() async throws -> [(sandboxID: String, sealedKey: String)] {
        try await database.query("SELECT sandbox_id, sealed_key FROM sandbox_e2ee_keys", []).map {
            (try $0.string("sandbox_id"), try $0.string("sealed_key"))
        }
    }

    public func delete(sandboxID: String) async throws {
        try await database.query("DELETE FROM sandbox_e2ee_keys WHERE sandbox_id = ?", [.text(sandboxID)])
    }
}
