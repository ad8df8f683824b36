import OmniRunError

/// One `omnirun serve` of a cluster sharing a database: where it is, what it can hold
/// and until when it is known to be up (its lease).
public struct NodeRecord: Sendable, Equatable {
    public var id: String
    public var region: String
    /// How other nodes and the `omnirun node` commands reach it (`--advertise-url`).
    public var advertiseURL: String?
    public var startedAt: Int64
    /// Renewed every few seconds; a lease in the past means the node is down.
    public var leaseExpiresAt: Int64
    public var draining: Bool
    public var vcpus: Int
    /// Memory available for new sandboxes, MiB.
    public var memoryMB: Int
    /// Free disk in the data directory, MiB.
    public var diskMB: Int
    public var running: Int
    /// Templates this node holds snapshots of.
    public var templates: [String]
    /// The host's one-minute load average.
    public var load: Double
    /// The port of its preview gateway, on the advertise URL's host (nil: none).
    public var previewPort: Int?

    public init(
        id: String, region: String, advertiseURL: String?, startedAt: Int64, leaseExpiresAt: Int64, draining: Bool = false,
        vcpus: Int, memoryMB: Int, diskMB: Int, running: Int, templates: [String], load: Double, previewPort: Int? = nil
    ) {
        self.previewPort = previewPort
        self.id = id
        self.region = region
        self.advertiseURL = advertiseURL
        self.startedAt = startedAt
        self.leaseExpiresAt = leaseExpiresAt
        self.draining = draining
        self.vcpus = vcpus
        self.memoryMB = memoryMB
        self.diskMB = diskMB
        self.running = running
        self.templates = templates
        self.load = load
    }

    public func isUp(at now: Int64) -> Bool { leaseExpiresAt > now }
}

/// The cluster's nodes and their leases, and the admission of new sandboxes against an
/// account's concurrent limit, exact across nodes.
public struct NodeRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    /// Registers the node or renews its lease with its current figures. The draining flag
    /// is the operator's and stays as it is.
    public func renew(_ node: NodeRecord) async throws {
        let templates = node.templates.joined(separator: ",")
        let updated = try await database.query(
            """
            UPDATE nodes SET region = ?, advertise_url = ?, started_at = ?, lease_expires_at = ?, vcpus = ?, memory_mb = ?,
                disk_mb = ?, running = ?, templates = ?, load = ?, preview_port = ? WHERE id = ? RETURNING id
            """,
            [
                .text(node.region), SQLValue(node.advertiseURL), .int(node.startedAt), .int(node.leaseExpiresAt), SQLValue(node.vcpus),
                SQLValue(node.memoryMB), SQLValue(node.diskMB), SQLValue(node.running), .text(templates), .double(node.load),
                SQLValue(node.previewPort.map(Int64.init)), .text(node.id),
            ])
        guard updated.isEmpty else { return }
        do {
            try await database.query(
                """
                INSERT INTO nodes (id, region, advertise_url, started_at, lease_expires_at, draining, vcpus, memory_mb, disk_mb,
                    running, templates, load, preview_port)
                VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(node.id), .text(node.region), SQLValue(node.advertiseURL), .int(node.startedAt), .int(node.leaseExpiresAt),
                    SQLValue(node.vcpus), SQLValue(node.memoryMB), SQLValue(node.diskMB), SQLValue(node.running), .text(templates),
                    .double(node.load), SQLValue(node.previewPort.map(Int64.init)),
                ])
        } catch let error as OmniRunError where error.code == .alreadyExists {
            // Another start of the same node id won the insert: renew over it.
            try await renew(node)
        }
    }

    public func list() async throws -> [NodeRecord] {
        try await database.query("SELECT * FROM nodes ORDER BY region, id").map(Self.node)
    }

    public func find(id: String) async throws -> NodeRecord? {
        try await database.query("SELECT * FROM nodes WHERE id = ?", [.text(id)]).first.map(Self.node)
    }

    /// Starts or stops a drain; false when there is no such node.
    public func setDraining(id: String, _ draining: Bool) async throws -> Bool {
        !(try await database.query("UPDATE nodes SET draining = ? WHERE id = ? RETURNING id", [SQLValue(draining), .text(id)]).isEmpty)
    }

    /// Live sandboxes per node.
    public func liveSandboxes(node: String) async throws -> Int {
        Int(
            try await database.query(
                "SELECT COUNT(*) AS n FROM sandboxes WHERE node_id = ? AND state IN (?, ?)", [.text(node), .state(.running), .state(.paused)]
            ).first?.int("n") ?? 0)
    }

    // MARK: admission

    /// Takes one of the account's `limit` places for `count` new sandboxes, counting the
    /// sandboxes it runs on every node and the places other creates hold: in one
    /// transaction that locks the account's row, so creates racing on different nodes
    /// take turns and never overshoot. The place is held until `release` (or until
    /// `expiresAt`, should its node die mid-create).
    public func admit(accountID: String, limit: Int, count: Int = 1, reservation: String, node: String, expiresAt: Int64, now: Int64)
        async throws -> Bool
    {
        try await database.transaction { tx in
            if tx.dialect == .postgres {
                try await tx.query("SELECT id FROM accounts WHERE id = ? FOR UPDATE", [.text(accountID)])
            }
            let running = try await tx.query(
                "SELECT COUNT(*) AS n FROM sandboxes WHERE state = ? AND account_id = ?", [.state(.running), .text(accountID)]
            ).first?.int("n") ?? 0
            let held = try await tx.query(
                "SELECT CAST(COALESCE(SUM(places), 0) AS BIGINT) AS n FROM sandbox_admissions WHERE account_id = ? AND expires_at > ?",
                [.text(accountID), .int(now)]
            ).first?.int("n") ?? 0
            guard running + held + Int64(count) <= Int64(limit) else { return false }
            try await tx.query(
                "INSERT INTO sandbox_admissions (id, account_id, node_id, places, expires_at) VALUES (?, ?, ?, ?, ?)",
                [.text(reservation), .text(accountID), .text(node), SQLValue(count), .int(expiresAt)])
            return true
        }
    }

    /// Gives a place back (the sandbox runs and is counted as such, or its create failed).
    public func release(reservation: String) async throws {
        try await database.query("DELETE FROM sandbox_admissions WHERE id = ?", [.text(reservation)])
    }

    /// Forgets places whose creates never said how they ended.
    public func releaseExpired(now: Int64) async throws {
        try await database.query("DELETE FROM sandbox_admissions WHERE expires_at <= ?", [.int(now)])
    }

    static func node(_ row: SQLRow) throws -> NodeRecord {
        NodeRecord(
            id: try row.string("id"), region: try row.string("region"), advertiseURL: row.optionalString("advertise_url"),
            startedAt: try row.int("started_at"), leaseExpiresAt: try row.int("lease_expires_at"), draining: row.bool("draining"),
            vcpus: Int(clamping: try row.int("vcpus")), memoryMB: Int(clamping: try row.int("memory_mb")),
            diskMB: Int(clamping: try row.int("disk_mb")), running: Int(clamping: try row.int("running")),
            templates: (row.optionalString("templates") ?? "").split(separator: ",").map(String.init),
            load: row.double("load"), previewPort: row.optionalInt("preview_port").map { Int(clamping: $0) })
    }
}

extension SandboxRepository {
    /// Ends as `lost` the live sandboxes of nodes whose lease ran out before `expiredBefore`
    /// (the grace included), and returns them: whichever node runs this first ends each
    /// one, exactly once.
    public func endSandboxesOfDownNodes(expiredBefore: Int64, at now: Int64) async throws -> [SandboxRecord] {
        try await database.query(
            """
            UPDATE sandboxes SET state = ?, end_reason = ?, ended_at = ?
            WHERE state IN (?, ?) AND node_id IN (SELECT id FROM nodes WHERE lease_expires_at < ?)
            RETURNING *
            """,
            [.state(.ended), .text(EndReason.lost.rawValue), .int(now), .state(.running), .state(.paused), .int(expiredBefore)]
        ).map(record)
    }
}

extension SandboxRepository {
    /// The running sandboxes of one node (and those recorded before nodes had ids).
    public func running(node: String) async throws -> [SandboxRecord] {
        try await database.query(
            "SELECT * FROM sandboxes WHERE state = ? AND (node_id = ? OR node_id IS NULL) ORDER BY created_at, id",
            [.state(.running), .text(node)]
        ).map(record)
    }
}

extension SandboxRepository {
    /// The paused sandboxes of one node (and those recorded before nodes had ids).
    public func paused(node: String) async throws -> [SandboxRecord] {
        try await database.query(
            "SELECT * FROM sandboxes WHERE state = ? AND (node_id = ? OR node_id IS NULL) ORDER BY paused_at, id",
            [.state(.paused), .text(node)]
        ).map(record)
    }

    /// Hands a paused sandbox from node `from` to node `to` (its saved state is there now).
    /// False if it is no longer paused on `from` (resumed, killed or moved meanwhile).
    public func move(id: String, from: String, to: String, region: String) async throws -> Bool {
        try await !database.query(
            """
            UPDATE sandboxes SET node_id = ?, region = ?
            WHERE id = ? AND state = ? AND (node_id = ? OR node_id IS NULL) RETURNING id
            """,
            [.text(to), .text(region), .text(id), .state(.paused), .text(from)]
        ).isEmpty
    }
}
