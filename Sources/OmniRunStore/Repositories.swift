import OmniRunError

/// Accounts and their API keys (stored as hashes only).
public struct AccountRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    public func create(_ account: AccountRecord) async throws {
        try await database.query(
            "INSERT INTO accounts (id, email, role, concurrent_limit, created_at) VALUES (?, ?, ?, ?, ?)",
            [.text(account.id), .text(account.email), .text(account.role.rawValue), SQLValue(account.concurrentLimit), .int(account.createdAt)])
    }

    public func count() async throws -> Int {
        Int(try await database.query("SELECT COUNT(*) AS n FROM accounts").first?.int("n") ?? 0)
    }

    public func find(id: String) async throws -> AccountRecord? {
        try await database.query("SELECT * FROM accounts WHERE id = ?", [.text(id)]).first.map(Self.account)
    }

    public func find(email: String) async throws -> AccountRecord? {
        try await database.query("SELECT * FROM accounts WHERE email = ?", [.text(email)]).first.map(Self.account)
    }

    public func setConcurrentLimit(accountID: String, limit: Int) async throws {
        try await database.query("UPDATE accounts SET concurrent_limit = ? WHERE id = ?", [SQLValue(limit), .text(accountID)])
    }

    static func account(_ row: SQLRow) throws -> AccountRecord {
        AccountRecord(
            id: try row.string("id"), email: try row.string("email"), role: try row.value("role", as: AccountRole.self),
            concurrentLimit: Int(try row.int("concurrent_limit")), createdAt: try row.int("created_at"),
            spendCapCents: row.optionalInt("llm_spend_cap_cents"), spendMicrocents: row.optionalInt("llm_spend_microcents") ?? 0)
    }

    public func addKey(id: String, accountID: String, name: String, hash: String, prefix: String, expiresAt: Int64?) async throws {
        try await database.query(
            "INSERT INTO api_keys (id, account_id, name, key_hash, prefix, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [.text(id), .text(accountID), .text(name), .text(hash), .text(prefix), .int(nowMillis()), SQLValue(expiresAt)])
    }

    /// The account owning a live key with this hash.
    public func account(forKeyHash hash: String, at now: Int64) async throws -> AccountRecord? {
        let rows = try await database.query(
            """
            SELECT a.* FROM api_keys k JOIN accounts a ON a.id = k.account_id
            WHERE k.key_hash = ? AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?)
            """, [.text(hash), .int(now)])
        return try rows.first.map(Self.account)
    }

    /// The key with this hash and its account, whatever its state (the caller tells
    /// a revoked or expired key from an unknown one).
    public func key(forHash hash: String) async throws -> (key: APIKeyRecord, account: AccountRecord)? {
        guard let row = try await database.query("SELECT * FROM api_keys WHERE key_hash = ?", [.text(hash)]).first else {
            return nil
        }
        let key = try Self.key(row)
        guard let account = try await find(id: key.accountID) else { return nil }
        return (key, account)
    }

    public func keys(accountID: String) async throws -> [APIKeyRecord] {
        try await database.query(
            "SELECT * FROM api_keys WHERE account_id = ? ORDER BY created_at, id", [.text(accountID)]
        ).map(Self.key)
    }

    static func key(_ row: SQLRow) throws -> APIKeyRecord {
        APIKeyRecord(
            id: try row.string("id"), accountID: try row.string("account_id"), name: try row.string("name"),
            prefix: try row.string("prefix"), createdAt: try row.int("created_at"), expiresAt: row.optionalInt("expires_at"),
            revokedAt: row.optionalInt("revoked_at"))
    }

    public func revokeKey(id: String, accountID: String) async throws -> Bool {
        let existing = try await database.query(
            "SELECT id FROM api_keys WHERE id = ? AND account_id = ? AND revoked_at IS NULL", [.text(id), .text(accountID)])
        guard !existing.isEmpty else { return false }
        try await database.query("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [.int(nowMillis()), .text(id)])
        return true
    }
}

/// Seals the environment variables a sandbox was created with (`envVars`, which often hold
/// secrets) before they are stored, and opens them when read.
public protocol SandboxEnvSealing: Sendable {
    func seal(_ plaintext: String, sandboxID: String) throws -> String
    func open(_ sealed: String, sandboxID: String) throws -> String
}

/// Sandboxes, running and ended (the ended ones are the history).
public struct SandboxRepository: Sendable {
    let database: any SQLDatabase
    /// With a sealer the `env` column holds ciphertext; rows stored in the clear (JSON, from
    /// before sealing) are still read as they are.
    let envSealer: (any SandboxEnvSealing)?

    public init(database: any SQLDatabase, envSealer: (any SandboxEnvSealing)? = nil) {
        self.database = database
        self.envSealer = envSealer
    }

    func storedEnv(_ env: [String: String], sandboxID: String) throws -> String {
        let json = JSONText.encode(env)
        return try envSealer?.seal(json, sandboxID: sandboxID) ?? json
    }

    func openedEnv(_ stored: String?, sandboxID: String) -> [String: String] {
        guard let stored, !stored.hasPrefix("{") else { return JSONText.decode(stored) }
        return JSONText.decode(try? envSealer?.open(stored, sandboxID: sandboxID))
    }

    public func insert(_ record: SandboxRecord) async throws {
        try await database.query(
            """
            INSERT INTO sandboxes (id, account_id, template, state, created_at, ended_at, end_reason, timeout_seconds,
                expires_at, last_activity_at, metadata, env, vault_inject, cpu_count, memory_mb, machine_dir, machine_pid, node_id,
                auto_pause, region)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(record.id), .text(record.accountID), .text(record.template), .text(record.state.rawValue), .int(record.createdAt),
                SQLValue(record.endedAt), SQLValue(record.endReason?.rawValue), .int(record.timeoutSeconds), SQLValue(record.expiresAt),
                .int(record.lastActivityAt), .text(JSONText.encode(record.metadata)), .text(try storedEnv(record.env, sandboxID: record.id)),
                SQLValue(record.vaultInject), SQLValue(record.cpuCount), SQLValue(record.memoryMB),
                SQLValue(record.machineDirectory), SQLValue(record.machinePID.map { Int64($0) }), SQLValue(record.nodeID),
                SQLValue(record.autoPause), SQLValue(record.region),
            ])
    }

    public func find(id: String) async throws -> SandboxRecord? {
        try await database.query("SELECT * FROM sandboxes WHERE id = ?", [.text(id)]).first.map(record)
    }

    public func running(accountID: String? = nil) async throws -> [SandboxRecord] {
        if let accountID {
            return try await database.query(
                "SELECT * FROM sandboxes WHERE state = ? AND account_id = ? ORDER BY created_at, id", [.state(.running), .text(accountID)]
            ).map(record)
        }
        return try await database.query("SELECT * FROM sandboxes WHERE state = ? ORDER BY created_at, id", [.state(.running)]).map(record)
    }

    /// Running and paused sandboxes (what lists show, what a restart recovers).
    public func live(accountID: String? = nil) async throws -> [SandboxRecord] {
        if let accountID {
            return try await database.query(
                "SELECT * FROM sandboxes WHERE state IN (?, ?) AND account_id = ? ORDER BY created_at, id",
                [.state(.running), .state(.paused), .text(accountID)]
            ).map(record)
        }
        return try await database.query(
            "SELECT * FROM sandboxes WHERE state IN (?, ?) ORDER BY created_at, id", [.state(.running), .state(.paused)]
        ).map(record)
    }

    /// Paused sandboxes and the disk their saved state and disks use.
    public func pausedUsage() async throws -> (count: Int, bytes: Int64) {
        // Summed here: PostgreSQL's SUM of a BIGINT is a NUMERIC.
        let rows = try await database.query("SELECT paused_bytes FROM sandboxes WHERE state = ?", [.state(.paused)])
        return (rows.count, rows.reduce(0) { $0 + ($1.optionalInt("paused_bytes") ?? 0) })
    }

    /// How many sandboxes of this account are paused (the per-account limit).
    public func countPaused(accountID: String) async throws -> Int {
        Int(
            try await database.query(
                "SELECT COUNT(*) AS n FROM sandboxes WHERE state = ? AND account_id = ?", [.state(.paused), .text(accountID)]
            ).first?.int("n") ?? 0)
    }

    /// Sandboxes paused before `cutoff` (their retention has run out).
    public func paused(before cutoff: Int64) async throws -> [SandboxRecord] {
        try await database.query(
            "SELECT * FROM sandboxes WHERE state = ? AND paused_at < ? ORDER BY paused_at, id", [.state(.paused), .int(cutoff)]
        ).map(record)
    }

    public func markPaused(id: String, at: Int64, bytes: Int64) async throws {
        try await database.query(
            """
            UPDATE sandboxes SET state = ?, paused_at = ?, paused_bytes = ?, machine_pid = NULL, expires_at = NULL
                WHERE id = ? AND state = ?
            """,
            [.state(.paused), .int(at), .int(bytes), .text(id), .state(.running)])
    }

    public func markResumed(id: String, pid: Int32, expiresAt: Int64?, at: Int64) async throws {
        try await database.query(
            """
            UPDATE sandboxes SET state = ?, paused_at = NULL, paused_bytes = NULL, machine_pid = ?, expires_at = ?,
                last_activity_at = ? WHERE id = ? AND state = ?
            """,
            [.state(.running), .int(Int64(pid)), SQLValue(expiresAt), .int(at), .text(id), .state(.paused)])
    }

    public func countRunning(accountID: String) async throws -> Int {
        Int(
            try await database.query(
                "SELECT COUNT(*) AS n FROM sandboxes WHERE state = ? AND account_id = ?", [.state(.running), .text(accountID)]
            ).first?.int("n") ?? 0)
    }

    /// Ended sandboxes, newest first: `limit` of them after skipping `offset` (of those
    /// created before `before`, when given).
    public func ended(accountID: String, limit: Int, before: Int64?, offset: Int = 0) async throws -> [SandboxRecord] {
        if let before {
            return try await database.query(
                """
                SELECT * FROM sandboxes WHERE state = ? AND account_id = ? AND created_at < ?
                ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?
                """, [.state(.ended), .text(accountID), .int(before), SQLValue(limit), SQLValue(max(0, offset))]
            ).map(record)
        }
        return try await database.query(
            "SELECT * FROM sandboxes WHERE state = ? AND account_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [.state(.ended), .text(accountID), SQLValue(limit), SQLValue(max(0, offset))]
        ).map(record)
    }

    public func markEnded(id: String, reason: EndReason, at: Int64) async throws {
        try await database.query(
            "UPDATE sandboxes SET state = ?, end_reason = ?, ended_at = ? WHERE id = ? AND state IN (?, ?)",
            [.state(.ended), .text(reason.rawValue), .int(at), .text(id), .state(.running), .state(.paused)])
    }

    public func setExpiry(id: String, timeoutSeconds: Int64, expiresAt: Int64?) async throws {
        try await database.query(
            "UPDATE sandboxes SET timeout_seconds = ?, expires_at = ? WHERE id = ?",
            [.int(timeoutSeconds), SQLValue(expiresAt), .text(id)])
    }

    public func touch(id: String, at: Int64) async throws {
        try await database.query("UPDATE sandboxes SET last_activity_at = ? WHERE id = ?", [.int(at), .text(id)])
    }

    public func setMachine(id: String, directory: String?, pid: Int32?) async throws {
        try await database.query(
            "UPDATE sandboxes SET machine_dir = ?, machine_pid = ? WHERE id = ?",
            [SQLValue(directory), SQLValue(pid.map { Int64($0) }), .text(id)])
    }

    func record(_ row: SQLRow) throws -> SandboxRecord {
        let id = try row.string("id")
        return SandboxRecord(
            id: id, accountID: try row.string("account_id"), template: try row.string("template"),
            state: try row.value("state", as: SandboxState.self), createdAt: try row.int("created_at"), endedAt: row.optionalInt("ended_at"),
            endReason: row.optionalString("end_reason").map(EndReason.init(rawValue:)), timeoutSeconds: try row.int("timeout_seconds"),
            expiresAt: row.optionalInt("expires_at"), lastActivityAt: try row.int("last_activity_at"),
            metadata: JSONText.decode(row.optionalString("metadata")), env: openedEnv(row.optionalString("env"), sandboxID: id),
            vaultInject: row.bool("vault_inject"), cpuCount: Int(row.optionalInt("cpu_count") ?? 1),
            memoryMB: Int(row.optionalInt("memory_mb") ?? 256), machineDirectory: row.optionalString("machine_dir"),
            machinePID: row.optionalInt("machine_pid").flatMap { Int32(exactly: $0) }, nodeID: row.optionalString("node_id"),
            autoPause: row.bool("auto_pause"), pausedAt: row.optionalInt("paused_at"), pausedBytes: row.optionalInt("paused_bytes"),
            region: row.optionalString("region"))
    }
}

/// Small named values the server keeps (its signing secret).
public struct SettingsRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    public func value(_ name: String) async throws -> String? {
        try await database.query("SELECT value FROM settings WHERE name = ?", [.text(name)]).first?.optionalString("value")
    }

    /// Stores `value` unless one exists; returns the stored one.
    public func valueOrInsert(_ name: String, _ value: String) async throws -> String {
        if let existing = try await self.value(name) { return existing }
        do {
            try await database.query("INSERT INTO settings (name, value) VALUES (?, ?)", [.text(name), .text(value)])
            return value
        } catch let error as OmniRunError where error.code == .alreadyExists {
            return try await self.value(name) ?? value
        }
    }
}

extension SQLValue {
    /// A sandbox state as the `state` column holds it.
    static func state(_ state: SandboxState) -> SQLValue { .text(state.rawValue) }
}
