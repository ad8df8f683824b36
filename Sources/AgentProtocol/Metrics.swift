/// `GET /v1/metrics`: what the guest itself sees, read from `/proc` and `statvfs("/")`.
/// CPU time is cumulative (in clock ticks, summed over CPUs): the host turns two samples
/// into a percentage.
public struct GuestMetrics: Codable, Sendable, Equatable {
    /// Ticks spent in user, nice, system, irq, softirq and steal.
    public var cpuBusyTicks: UInt64
    /// Busy plus idle and iowait.
    public var cpuTotalTicks: UInt64
    public var cpuCount: Int
    public var memTotalBytes: UInt64
    /// MemTotal − MemAvailable: what programs hold (page cache that can be dropped is not counted).
    public var memUsedBytes: UInt64
    public var diskTotalBytes: UInt64
    public var diskUsedBytes: UInt64
    public var uptimeMillis: Int64

    public init(
        cpuBusyTicks: UInt64, cpuTotalTicks: UInt64, cpuCount: Int, memTotalBytes: UInt64, memUsedBytes: UInt64,
        diskTotalBytes: UInt64, diskUsedBytes: UInt64, uptimeMillis: Int64
    ) {
        self.cpuBusyTicks = cpuBusyTicks
        self.cpuTotalTicks = cpuTotalTicks
        self.cpuCount = cpuCount
        self.memTotalBytes = memTotalBytes
        self.memUsedBytes = memUsedBytes
        self.diskTotalBytes = diskTotalBytes
        self.diskUsedBytes = diskUsedBytes
        self.uptimeMillis = uptimeMillis
    }

    /// Parses `/proc/stat`'s first line and `/proc/meminfo` (kept here so both sides test it).
    /// Both files are whatever the guest's root mounts there: sums and products saturate
    /// at `UInt64.max` instead of trapping (the host clamps the figures to the machine).
    public static func parse(stat: String, meminfo: String) -> (busy: UInt64, total: UInt64, memTotal: UInt64, memUsed: UInt64) {
        var busy: UInt64 = 0
        var total: UInt64 = 0
        if let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) {
            let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
            // user nice system idle iowait irq softirq steal (guest time is already in user).
            for (index, value) in fields.prefix(8).enumerated() {
                total = saturatingSum(total, value)
                if index != 3 && index != 4 { busy = saturatingSum(busy, value) }
            }
        }
        var values: [Substring: UInt64] = [:]
        for line in meminfo.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kib = UInt64(parts[1]) else { continue }
            let (bytes, overflow) = kib.multipliedReportingOverflow(by: 1024)
            values[parts[0].dropLast()] = overflow ? .max : bytes
        }
        let memTotal = values["MemTotal"] ?? 0
        let available = values["MemAvailable"] ?? values["MemFree"] ?? 0
        return (busy, total, memTotal, memTotal > available ? memTotal - available : 0)
    }
}

private func saturatingSum(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}

/// `POST /v1/clock`: sets the guest's wall clock (after a resume: it stood still while paused).
public struct ClockRequest: Codable, Sendable, Equatable {
    public var unixTimeNanos: Int64
    public init(unixTimeNanos: Int64) { self.unixTimeNanos = unixTimeNanos }
}
