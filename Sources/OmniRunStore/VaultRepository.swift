import OmniRunError

/// A credential's name and dates; its value never leaves the vault service.
public struct VaultCredentialInfo: Sendable, Equatable {
    public var name: String
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(name: String, createdAt: Int64, updatedAt: Int64) {
        self.name = name
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// The vaults: one wrapped data key per account and the sealed credentials. The
/// store holds ciphertext only; sealing and opening happen in the server.
public struct VaultRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    public func wrappedKey(accountID: String) async throws -> (key: String, createdAt: Int64)? {
        guard let row = try await database.query("SELECT * FROM vaults WHERE account_id = ?", [.text(accountID)]).first else {
            return nil
        }
        return (try row.string("wrapped_key"), try row.int("created_at"))
    }

    /// Stores the account's wrapped data key unless one exists; returns the stored one.
    public func createVault(accountID: String, wrappedKey: String, at now: Int64) async throws -> (key: String, createdAt: Int64) {
        if let existing = try await self.wrappedKey(accountID: accountID) { return existing }
        do {
            try await database.query(
                "INSERT INTO vaults (account_id, wrapped_key, created_at) VALUES (?, ?, ?)",
                [.text(accountID), .text(wrappedKey), .int(now)])
            return (wrappedKey, now)
        } catch let error as OmniRunError where error.code == .alreadyExists {
            guard let existing = try await self.wrappedKey(accountID: accountID) else { throw error }
            return existing
        }
    }

    /// Creates or replaces a credential; returns true when it was new.
    public func put(accountID: String, name: String, sealed: String, at now: Int64) async throws -> Bool {
        try await database.transaction { tx in
            let existing = try await tx.query(
                "SELECT name FROM vault_credentials WHERE account_id = ? AND name = ?", [.text(accountID), .text(name)])
            if existing.isEmpty {
                try await tx.query(
                    "INSERT INTO vault_credentials (account_id, name, sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                    [.text(accountID), .text(name), .text(sealed), .int(now), .int(now)])
                return true
            }
            try await tx.query(
                "UPDATE vault_credentials SET sealed = ?, updated_at = ? WHERE account_id = ? AND name = ?",
                [.text(sealed), .int(now), .text(accountID), .text(name)])
            return false
        }
    }

    public func list(accountID: String) async throws -> [VaultCredentialInfo] {
        try await database.query(
            "SELECT name, created_at, updated_at FROM vault_credentials WHERE account_id = ? ORDER BY name",
            [.text(accountID)]
        ).map { row in
            VaultCredentialInfo(
                name: try row.string("name"), createdAt: try row.int("created_at"), updatedAt: try row.int("updated_at"))
        }
    }

    /// Every sealed credential of the account, by name.
    public func sealedCredentials(accountID: String) async throws -> [(name: String, sealed: String)] {
        try await database.query(
            "SELECT name, sealed FROM vault_credentials WHERE account_id = ? ORDER BY name", [.text(accountID)]
        ).map { (try $0.string("name"), try $0.string("sealed")) }
    }

    public func count(accountID: String) async throws -> Int {
        Int(
            try await database.query(
                "SELECT COUNT(*) AS n FROM vault_credentials WHERE account_id = ?", [.text(accountID)]
            ).first?.int("n") ?? 0)
    }

    /// Removes a credential; returns whether it existed.
    public func delete(accountID: String, name: String) async throws -> Bool {
        !(try await database.query(
            "DELETE FROM vault_credentials WHERE account_id = ? AND name = ? RETURNING name", [.text(accountID), .text(name)]
        ).isEmpty)
    }
}
