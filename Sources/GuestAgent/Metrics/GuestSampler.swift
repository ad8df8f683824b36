import AgentProtocol

#if canImport(Glibc)
import Glibc
#endif

/// One sample of the guest's CPU, memory and root file system (`GET /v1/metrics`).
enum GuestSampler {
    static func sample(bootMillis: Int64) -> GuestMetrics {
        let parsed = GuestMetrics.parse(stat: readSmallFile("/proc/stat") ?? "", meminfo: readSmallFile("/proc/meminfo") ?? "")
        var fs = statvfs()
        var diskTotal: UInt64 = 0
        var diskUsed: UInt64 = 0
        if statvfs("/", &fs) == 0 {
            // What a file system reports is its own business (the guest's root can mount
            // any at `/`): saturate rather than trap.
            let unit = UInt64(fs.f_frsize)
            let blocks = UInt64(fs.f_blocks)
            let used = blocks > UInt64(fs.f_bfree) ? blocks - UInt64(fs.f_bfree) : 0
            let (total, totalOverflow) = blocks.multipliedReportingOverflow(by: unit)
            let (usedBytes, usedOverflow) = used.multipliedReportingOverflow(by: unit)
            diskTotal = totalOverflow ? .max : total
            diskUsed = usedOverflow ? .max : usedBytes
        }
        return GuestMetrics(
            cpuBusyTicks: parsed.busy, cpuTotalTicks: parsed.total, cpuCount: max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))),
            memTotalBytes: parsed.memTotal, memUsedBytes: parsed.memUsed, diskTotalBytes: diskTotal, diskUsedBytes: diskUsed,
            uptimeMillis: Clock.monotonicMillis() - bootMillis)
    }
}
