import Foundation

/// Readings of this host's processes from /proc.
enum HostStats {
    /// Proportional set size of a process in bytes (shared pages divided among sharers).
    static func pss(_ pid: Int32) -> Int64? {
        field(path: "/proc/\(pid)/smaps_rollup", prefix: "Pss:").map { $0 * 1024 }
    }

    static func rss(_ pid: Int32) -> Int64? {
        field(path: "/proc/\(pid)/status", prefix: "VmRSS:").map { $0 * 1024 }
    }

    /// User + system CPU time of a process (all threads) in seconds.
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state(0) ppid(1) … utime(11) stime(12).
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// CPU time the whole host has spent busy (user, nice, system, interrupts), in
    /// seconds since boot: what every process together used, ours and the guests'.
    static func busyCPUSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = text.split(separator: "\n").first, line.hasPrefix("cpu ")
        else { return nil }
        let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        // user nice system idle iowait irq softirq steal …
        guard values.count >= 7 else { return nil }
        return (values[0] + values[1] + values[2] + values[5] + values[6]) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Processes whose parent is `pid`.
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { child in
            guard let text = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                let close = text.lastIndex(of: ")")
            else { return false }
            let fields = text[text.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }
    }

    static func memAvailable() -> Int64? {
        field(path: "/proc/meminfo", prefix: "MemAvailable:").map { $0 * 1024 }
    }

    static func cpuModel() -> String {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("model name") }
        return line.map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
    }

    /// The first number after `prefix` on its line (kB for /proc files).
    private static func field(path: String, prefix: String) -> Int64? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            return line.dropFirst(prefix.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int64($0) }
        }
        return nil
    }

    /// The host's own sequential write rate (MiB/s): `mib` MiB in 1 MiB writes, then fsync.
    static func diskWriteRate(directory: String, mib: Int) throws -> Double {
        let path = directory + "/.omnirun-bench-disk-\(getpid())"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw BenchError("cannot create \(path)") }
        defer {
            close(fd)
            unlink(path)
        }
        var block = [UInt8](repeating: 0, count: 1 << 20)
        for i in block.indices { block[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
        let started = ContinuousClock.now
        for _ in 0..<mib {
            let written = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == block.count else { throw BenchError("short write to \(path)") }
        }
        fsync(fd)
        return Double(mib) / max((ContinuousClock.now - started).milliseconds / 1000, 0.000_001)
    }
}

/// Samples a process's resident memory in the background and keeps the peak.
final class PeakMemorySampler: @unchecked Sendable {
    private let pid: Int32
    private var peak: Int64 = 0
    private var task: Task<Void, Never>?
    private let lock = NSLock()

    init(pid: Int32) { self.pid = pid }

    func start() {
        task = Task.detached { [self] in
            while !Task.isCancelled {
                if let rss = HostStats.rss(pid) { lock.withLock { peak = max(peak, rss) } }
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    func stop() -> Int64 {
        task?.cancel()
        if let rss = HostStats.rss(pid) { lock.withLock { peak = max(peak, rss) } }
        return lock.withLock { peak }
    }
}
