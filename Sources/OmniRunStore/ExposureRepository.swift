import OmniRunError

/// A managed preview URL of one port of a sandbox.
public struct ExposureRecord: Sendable, Equatable {
    public var id: String
    public var sandboxID: String
    public var accountID: String
    public var port: Int
    /// The full host name the preview gateway answers for it (`brisk-lotus-1a2b3c4d.localhost`).
    public var hostname: String
    /// public | private
    public var visibility: String
    /// pending | ready | expired | revoked | sandbox_stopped
    public var status: String
    public var openPath: String
    public var preserveHost: Bool
    public var createdAt: Int64
    public var expiresAt: Int64
    public var revokedAt: Int64?
    public var sandboxStoppedAt: Int64?
    public var lastAccessedAt: Int64?
    public var createdBy: String?

    public init(
        id: String, sandboxID: String, accountID: String, port: Int, hostname: String, visibility: String, status: String,
        openPath: String, preserveHost: Bool, createdAt: Int64, expiresAt: Int64, revokedAt: Int64? = nil,
        sandboxStoppedAt: Int64? = nil, lastAccessedAt: Int64? = nil, createdBy: String? = nil
    ) {
        self.id = id
        self.sandboxID = sandboxID
        self.accountID = accountID
        self.port = port
        self.hostname = hostname
        self.visibility = visibility
        self.status = status
        self.openPath = openPath
        self.preserveHost = preserveHost
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.sandboxStoppedAt = sandboxStoppedAt
        self.lastAccessedAt = lastAccessedAt
        self.createdBy = createdBy
    }

    /// Whether the gateway may still route to it (before expiry and the sandbox's end).
    public var isLive: Bool { status == "pending" || status == "ready" }
}

public struct ExposureRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    public func insert(_ record: ExposureRecord) async throws {
        try await database.query(
            """
            INSERT INTO exposures (id, sandbox_id, account_id, port, hostname, visibility, status, open_path, preserve_host,
                created_at, expires_at, created_by)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(record.id), .text(record.sandboxID), .text(record.accountID), SQLValue(record.port), .text(record.hostname),
                .text(record.visibility), .text(record.status), .text(record.openPath), SQLValue(record.preserveHost),
                .int(record.createdAt), .int(record.expiresAt), SQLValue(record.createdBy),
            ])
    }

    public func find(id: String) async throws -> ExposureRecord? {
        try await database.query("SELECT * FROM exposures WHERE id = ?", [.text(id)]).first.map(Self.record)
    }

    public func find(hostname: String) async throws -> ExposureRecord? {
        try await database.query("SELECT * FROM exposures WHERE hostname = ?", [.text(hostname)]).first.map(Self.record)
    }

    public func list(sandboxID: String) async throws -> [ExposureRecord] {
        try await database.query(
            "SELECT * FROM exposures WHERE sandbox_id = ? ORDER BY created_at, id", [.text(sandboxID)]
        ).map(Self.record)
    }

    public func count(sandboxID: String) async throws -> Int {
        Int(
            try await database.query(
                "SELECT COUNT(*) AS n FROM exposures WHERE sandbox_id = ?", [.text(sandboxID)]
            ).first?.int("n") ?? 0)
    }

    /// Moves a live exposure to `status` (expired, revoked, ready); false when it was not live.
    @discardableResult
    public func setStatus(id: String, status: String, at time: Int64) async throws -> Bool {
        let column = status == "revoked" ? ", revoked_at = ?" : ""
        var binds: [SQLValue] = [.text(status)]
        if status == "revoked" { binds.append(.int(time)) }
        binds.append(.text(id))
        let rows = try await database.query(
            "UPDATE exposures SET status = ?\(column) WHERE id = ? AND status IN ('pending', 'ready') RETURNING id", binds)
        return !rows.isEmpty
    }

    /// A new expiry; a live or expired exposure becomes `ready` (or stays `pending`) again.
    public func refresh(id: String, expiresAt: Int64, status: String) async throws {
        try await database.query(
            "UPDATE exposures SET expires_at = ?, status = ? WHERE id = ? AND status IN ('pending', 'ready', 'expired')",
            [.int(expiresAt), .text(status), .text(id)])
    }

    /// Every live exposure of a sandbox that ended turns `sandbox_stopped`.
    public func sandboxStopped(sandboxID: String, at time: Int64) async throws {
        try await database.query(
            """
            UPDATE exposures SET status = 'sandbox_stopped', sandbox_stopped_at = ?
            WHERE sandbox_id = ? AND status IN ('pending', 'ready')
            """, [.int(time), .text(sandboxID)])
    }

    public func touch(id: String, at time: Int64) async throws {
        try await database.query("UPDATE exposures SET last_accessed_at = ? WHERE id = ?", [.int(time), .text(id)])
    }

    static func record(_ row: SQLRow) throws -> ExposureRecord {
        ExposureRecord(
            id: try row.string("id"), sandboxID: try row.string("sandbox_id"), accountID: try row.string("account_id"),
            port: Int(try row.int("port")), hostname: try row.string("hostname"), visibility: try row.string("visibility"),
            status: try row.string("status"), openPath: try row.string("open_path"), preserveHost: row.bool("preserve_host"),
            createdAt: try row.int("created_at"), expiresAt: try row.int("expires_at"), revokedAt: row.optionalInt("revoked_at"),
            sandboxStoppedAt: row.optionalInt("sandbox_stopped_at"), lastAccessedAt: row.optionalInt("last_accessed_at"),
            createdBy: row.optionalString("created_by"))
    }
}

/// A sandbox's network settings, kept beside its record.
public struct SandboxNetworkRecord: Sendable, Equatable {
    public var sandboxID: String
    /// SHA-256 (hex) of secure mode's traffic token; nil when the sandbox is not secure.
    public var trafficTokenHash: String?
    /// The Host header its proxied traffic carries (`${PORT}` is replaced by the port).
    public var maskRequestHost: String?
    public var internet: Bool
    /// The egress policy as JSON text.
    public var policy: String?

    public init(sandboxID: String, trafficTokenHash: String?, maskRequestHost: String?, internet: Bool, policy: String?) {
        self.sandboxID = sandboxID
        self.trafficTokenHash = trafficTokenHash
        self.maskRequestHost = maskRequestHost
        self.internet = internet
        self.policy = policy
    }
}

public struct SandboxNetworkRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    public func insert(_ record: SandboxNetworkRecord) async throws {
        try await database.query(
            "INSERT INTO sandbox_network (sandbox_id, traffic_token_hash, mask_request_host, internet, policy) VALUES (?, ?, ?, ?, ?)",
            [
                .text(record.sandboxID), SQLValue(record.trafficTokenHash), SQLValue(record.maskRequestHost),
                SQLValue(record.internet), SQLValue(record.policy),
            ])
    }

    public func find(sandboxID: String) async throws -> SandboxNetworkRecord? {
        guard let row = try await database.query("SELECT * FROM sandbox_network WHERE sandbox_id = ?", [.text(sandboxID)]).first
        else { return nil }
        return SandboxNetworkRecord(
            sandboxID: try row.string("sandbox_id"), trafficTokenHash: row.optionalString("traffic_token_hash"),
            maskRequestHost: row.optionalString("mask_request_host"), internet: row.bool("internet"),
            policy: row.optionalString("policy"))
    }

    public func setPolicy(sandboxID: String, policy: String?) async throws {
        try await database.query("UPDATE sandbox_network SET policy = ? WHERE sandbox_id = ?", [SQLValue(policy), .text(sandboxID)])
    }
}
