/// The channel keys of e2ee sandboxes, sealed by the server before they get here: the
/// store holds ciphertext only. A row lives as long as its sandbox. Also each sandbox's
/// last request nonces, so that a replayed envelope is refused across restarts and nodes.
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

    // MARK: request nonces (replay protection)

    /// Records a request nonce; true if it was new. A nonce already seen is admitted only
    /// when a retry of exactly this route was allowed for it (and that allowance is used up).
    public func admitNonce(sandboxID: String, nonce: String, at now: Int64, route: String) async throws -> Bool {
        let inserted = try await database.query(
            """
            INSERT INTO sandbox_e2ee_nonces (sandbox_id, nonce, seen_at) VALUES (?, ?, ?)
            ON CONFLICT (sandbox_id, nonce) DO NOTHING RETURNING nonce
            """, [.text(sandboxID), .text(nonce), .int(now)])
        if !inserted.isEmpty { return true }
        let retried = try await database.query(
            """
            UPDATE sandbox_e2ee_nonces SET retry_route = NULL
            WHERE sandbox_id = ? AND nonce = ? AND retry_route = ? RETURNING nonce
            """, [.text(sandboxID), .text(nonce), .text(route)])
        return !retried.isEmpty
    }

    /// Lets a seen nonce in once more, on this route only (a retry after a 5xx).
    public func allowRetry(sandboxID: String, nonce: String, route: String) async throws {
        try await database.query(
            "UPDATE sandbox_e2ee_nonces SET retry_route = ? WHERE sandbox_id = ? AND nonce = ?",
            [.text(route), .text(sandboxID), .text(nonce)])
    }

    /// Keeps a sandbox's newest `keep` nonces.
    public func trimNonces(sandboxID: String, keep: Int) async throws {
        try await database.query(
            """
            DELETE FROM sandbox_e2ee_nonces WHERE sandbox_id = ? AND seen_at < (
                SELECT seen_at FROM sandbox_e2ee_nonces WHERE sandbox_id = ? ORDER BY seen_at DESC LIMIT 1 OFFSET ?)
            """, [.text(sandboxID), .text(sandboxID), SQLValue(keep)])
    }

    public func nonceCount(sandboxID: String) async throws -> Int {
        Int(
            try await database.query(
                "SELECT COUNT(*) AS n FROM sandbox_e2ee_nonces WHERE sandbox_id = ?", [.text(sandboxID)]
            ).first?.int("n") ?? 0)
    }

    public func deleteNonces(sandboxID: String) async throws {
        try await database.query("DELETE FROM sandbox_e2ee_nonces WHERE sandbox_id = ?", [.text(sandboxID)])
    }

    /// After a restart: the nonces of sandboxes that no longer live.
    public func deleteNoncesOfEndedSandboxes() async throws {
        try await database.query(
            """
            DELETE FROM sandbox_e2ee_nonces WHERE sandbox_id NOT IN (
                SELECT id FROM sandboxes WHERE state IN (?, ?))
            """, [.state(.running), .state(.paused)])
    }
}
