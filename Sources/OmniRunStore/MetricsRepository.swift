/// One metrics sample of a sandbox (`GET /sandboxes/{id}/metrics` items).
public struct MetricsSample: Sendable, Equatable {
    public var sandboxID: String
    public var at: Int64
    public var cpuUsedPct: Double
    public var cpuCount: Int
    public var memUsed: Int64
    public var memTotal: Int64
    public var diskUsed: Int64
    public var diskTotal: Int64
    /// The VMM process as the host sees it: its CPU (100 = one host core) and resident memory.
    public var hostCPUPct: Double
    public var hostRSS: Int64

    public init(
        sandboxID: String, at: Int64, cpuUsedPct: Double, cpuCount: Int, memUsed: Int64, memTotal: Int64, diskUsed: Int64,
        diskTotal: Int64, hostCPUPct: Double, hostRSS: Int64
    ) {
        self.sandboxID = sandboxID
        self.at = at
        self.cpuUsedPct = cpuUsedPct
        self.cpuCount = cpuCount
        self.memUsed = memUsed
        self.memTotal = memTotal
        self.diskUsed = diskUsed
        self.diskTotal = diskTotal
        self.hostCPUPct = hostCPUPct
        self.hostRSS = hostRSS
    }
}

/// Sandboxes' metrics samples, removed when the sandbox ends.
public struct MetricsRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    public func insert(_ sample: MetricsSample) async throws {
        try await database.query(
            """
            INSERT INTO sandbox_metrics (sandbox_id, at, cpu_used_pct, cpu_count, mem_used, mem_total, disk_used, disk_total,
                host_cpu_pct, host_rss) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(sample.sandboxID), .int(sample.at), .double(sample.cpuUsedPct), SQLValue(sample.cpuCount),
                .int(sample.memUsed), .int(sample.memTotal), .int(sample.diskUsed), .int(sample.diskTotal),
                .double(sample.hostCPUPct), .int(sample.hostRSS),
            ])
    }

    /// The newest `limit` samples, oldest first.
    public func samples(sandboxID: String, limit: Int) async throws -> [MetricsSample] {
        let rows = try await database.query(
            "SELECT * FROM sandbox_metrics WHERE sandbox_id = ? ORDER BY at DESC LIMIT ?", [.text(sandboxID), SQLValue(limit)])
        return try rows.reversed().map { row in
            MetricsSample(
                sandboxID: try row.string("sandbox_id"), at: try row.int("at"), cpuUsedPct: Self.double(row, "cpu_used_pct"),
                cpuCount: Int(try row.int("cpu_count")), memUsed: try row.int("mem_used"), memTotal: try row.int("mem_total"),
                diskUsed: try row.int("disk_used"), diskTotal: try row.int("disk_total"),
                hostCPUPct: Self.double(row, "host_cpu_pct"), hostRSS: try row.int("host_rss"))
        }
    }

    public func delete(sandboxID: String) async throws {
        try await database.query("DELETE FROM sandbox_metrics WHERE sandbox_id = ?", [.text(sandboxID)])
    }

    static func double(_ row: SQLRow, _ column: String) -> Double {
        switch row.values[column] {
        case .double(let value): value
        case .int(let value): Double(value)
        case .text(let text): Double(text) ?? 0
        default: 0
        }
    }
}
