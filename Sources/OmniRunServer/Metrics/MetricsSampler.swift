import AgentProtocol
import Foundation
import Logging
import OmniRunCore
import OmniRunStore
import SandboxRuntime
import ServiceLifecycle

/// Samples every running sandbox every `interval` (`OMNIRUN_METRICS_INTERVAL`): the
/// guest's own view from its agent (`/v1/metrics`: CPU ticks, memory, root file system)
/// and its VMM's from the host (`/proc/<pid>`: CPU time and resident memory). Samples
/// are stored for the sandbox's life (removed when it ends) and are not activity: a
/// sampled sandbox still goes idle.
actor MetricsSampler {
    let runtime: SandboxRuntime
    let repository: MetricsRepository
    let interval: Duration
    let logger: Logger
    private struct Previous {
        var busy: UInt64
        var total: UInt64
        var hostTicks: UInt64
        var at: ContinuousClock.Instant
    }
    private var previous: [SandboxID: Previous] = [:]
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    init(runtime: SandboxRuntime, repository: MetricsRepository, interval: Duration, logger: Logger) {
        self.runtime = runtime
        self.repository = repository
        self.interval = interval
        self.logger = logger
    }

    func sampleAll() async {
        let sandboxes = await runtime.running
        let live = Set(sandboxes.map(\.id))
        previous = previous.filter { live.contains($0.key) }
        await withTaskGroup(of: Void.self) { group in
            for sandbox in sandboxes {
                group.addTask { await self.sample(sandbox) }
            }
        }
    }

    private func sample(_ sandbox: Sandbox) async {
        guard let guest = try? await sandbox.agent.metrics(timeout: .seconds(5)) else { return }
        let now = ContinuousClock.now
        let hostTicks = Self.processTicks(sandbox.machine.processID)
        let hostRSS = Self.residentBytes(sandbox.machine.processID)
        let cpu: Double
        var hostCPU = 0.0
        if let last = previous[sandbox.id], guest.cpuTotalTicks > last.total {
            cpu = Double(guest.cpuBusyTicks &- last.busy) / Double(guest.cpuTotalTicks - last.total) * 100
            let seconds = Double((now - last.at).components.attoseconds) / 1e18 + Double((now - last.at).components.seconds)
            if seconds > 0, hostTicks >= last.hostTicks {
                hostCPU = Double(hostTicks - last.hostTicks) / Self.ticksPerSecond / seconds * 100
            }
        } else {
            // The first sample: the average since the guest booted.
            cpu = guest.cpuTotalTicks > 0 ? Double(guest.cpuBusyTicks) / Double(guest.cpuTotalTicks) * 100 : 0
        }
        previous[sandbox.id] = Previous(busy: guest.cpuBusyTicks, total: guest.cpuTotalTicks, hostTicks: hostTicks, at: now)
        let sample = MetricsSample(
            sandboxID: sandbox.id.rawValue, at: nowMillis(), cpuUsedPct: min(100, max(0, cpu)), cpuCount: guest.cpuCount,
            memUsed: Int64(guest.memUsedBytes), memTotal: Int64(guest.memTotalBytes), diskUsed: Int64(guest.diskUsedBytes),
            diskTotal: Int64(guest.diskTotalBytes), hostCPUPct: hostCPU, hostRSS: hostRSS)
        do {
            try await repository.insert(sample)
        } catch {
            logger.debug("storing a metrics sample failed", metadata: ["sandbox": "\(sandbox.id)", "error": "\(error)"])
        }
    }

    /// utime + stime of a process, in clock ticks.
    static func processTicks(_ pid: Int32) -> UInt64 {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return 0 }
        let text = String(decoding: data, as: UTF8.self)
        // Fields after the command name (which may hold spaces) start at the last ')'.
        guard let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // state is fields[0]; utime and stime are fields 14 and 15 of the line (1-based).
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return 0 }
        return user + system
    }

    static func residentBytes(_ pid: Int32) -> Int64 {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/status") else { return 0 }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kib = Int64(parts[1]) { return kib * 1024 }
        }
        return 0
    }
}

/// Runs the sampler on its interval.
struct MetricsSamplerService: Service {
    let sampler: MetricsSampler

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: sampler.interval)
                await sampler.sampleAll()
            }
        }
    }
}
