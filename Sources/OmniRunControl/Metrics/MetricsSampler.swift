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
/// sampled sandbox still goes idle. The guest's figures are its own claims (its root can
/// mount a forged `/proc/meminfo`): `GuestMetricsBounds` clamps them to what its machine
/// really has before anything is computed or stored.
package actor MetricsSampler {
    package nonisolated let runtime: SandboxRuntime
    package nonisolated let repository: MetricsRepository
    package nonisolated let interval: Duration
    package nonisolated let logger: Logger
    private struct Previous {
        package var busy: UInt64
        package var total: UInt64
        package var hostTicks: UInt64
        package var at: ContinuousClock.Instant
    }
    private var previous: [SandboxID: Previous] = [:]
    private var bounds: [SandboxID: GuestMetricsBounds] = [:]
    /// Sandboxes already logged for claiming more than their machine has (once each).
    private var warned: Set<SandboxID> = []
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    package init(runtime: SandboxRuntime, repository: MetricsRepository, interval: Duration, logger: Logger) {
        self.runtime = runtime
        self.repository = repository
        self.interval = interval
        self.logger = logger
    }

    package func sampleAll() async {
        let sandboxes = await runtime.running
        let live = Set(sandboxes.map(\.id))
        previous = previous.filter { live.contains($0.key) }
        bounds = bounds.filter { live.contains($0.key) }
        warned = warned.filter { live.contains($0) }
        await withTaskGroup(of: Void.self) { group in
            for sandbox in sandboxes {
                group.addTask { await self.sample(sandbox) }
            }
        }
    }

    private func sample(_ sandbox: Sandbox) async {
        guard let reported = try? await sandbox.guestMetrics(timeout: .seconds(5)) else { return }
        let limits = bounds[sandbox.id] ?? GuestMetricsBounds(machine: sandbox, catalog: runtime.catalog)
        bounds[sandbox.id] = limits
        let guest = limits.clamp(reported)
        if guest != reported, warned.insert(sandbox.id).inserted {
            logger.warning(
                "a sandbox reported metrics its machine cannot have; they are clamped",
                metadata: ["sandbox": "\(sandbox.id)", "reported": "\(reported)", "machine": "\(limits)"])
        }
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
        // Every figure below is within the machine's sizes (`clamp`): the conversions cannot trap.
        let sample = MetricsSample(
            sandboxID: sandbox.id.rawValue, at: nowMillis(), cpuUsedPct: cpu.isFinite ? min(100, max(0, cpu)) : 0,
            cpuCount: guest.cpuCount, memUsed: Int64(clamping: guest.memUsedBytes), memTotal: Int64(clamping: guest.memTotalBytes),
            diskUsed: Int64(clamping: guest.diskUsedBytes), diskTotal: Int64(clamping: guest.diskTotalBytes),
            hostCPUPct: hostCPU.isFinite ? hostCPU : 0, hostRSS: hostRSS)
        do {
            try await repository.insert(sample)
        } catch {
            logger.debug("storing a metrics sample failed", metadata: ["sandbox": "\(sandbox.id)", "error": "\(error)"])
        }
    }

    /// utime + stime of a process, in clock ticks.
    package static func processTicks(_ pid: Int32) -> UInt64 {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return 0 }
        let text = String(decoding: data, as: UTF8.self)
        // Fields after the command name (which may hold spaces) start at the last ')'.
        guard let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // state is fields[0]; utime and stime are fields 14 and 15 of the line (1-based).
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return 0 }
        return user.addingReportingOverflow(system).overflow ? .max : user + system
    }

    package static func residentBytes(_ pid: Int32) -> Int64 {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/status") else { return 0 }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kib = Int64(parts[1]), kib >= 0 { return kib.multipliedReportingOverflow(by: 1024).overflow ? .max : kib * 1024 }
        }
        return 0
    }
}

/// What a guest may claim about its machine: at most its vCPUs, memory and disk. A
/// figure past them is clamped (used never above total), so whatever the guest's root
/// writes into its `/proc`, the host stores numbers it can compute with.
package struct GuestMetricsBounds: Sendable, Equatable, CustomStringConvertible {
    package var vcpus: Int
    package var memoryBytes: UInt64
    package var diskBytes: UInt64
    /// When the template's disk size is unknown: far above any real disk, far below overflow.
    package static let unknownDiskBytes: UInt64 = 1 << 50

    package init(vcpus: Int, memoryBytes: UInt64, diskBytes: UInt64) {
        self.vcpus = max(1, vcpus)
        self.memoryBytes = memoryBytes
        self.diskBytes = diskBytes
    }

    /// The sizes of the sandbox's machine: its template's vCPUs and memory; its disk is
    /// the larger of the template's disk setting and its root image file.
    package init(machine sandbox: Sandbox, catalog: ImageCatalog) {
        guard let image = try? catalog.image(for: sandbox.template) else {
            self.init(vcpus: 64, memoryBytes: 1 << 40, diskBytes: Self.unknownDiskBytes)
            return
        }
        let file = (try? FileManager.default.attributesOfItem(atPath: image.rootfs)[.size] as? NSNumber)?.uint64Value ?? 0
        let setting = UInt64(clamping: max(0, image.diskMB ?? 0)) << 20
        let disk = max(file, setting)
        self.init(
            vcpus: image.vcpus, memoryBytes: UInt64(clamping: max(0, image.memoryMB)) << 20,
            diskBytes: disk > 0 ? min(disk, Self.unknownDiskBytes) : Self.unknownDiskBytes)
    }

    package func clamp(_ reported: GuestMetrics) -> GuestMetrics {
        var metrics = reported
        metrics.cpuCount = min(max(reported.cpuCount, 0), vcpus)
        metrics.cpuBusyTicks = min(reported.cpuBusyTicks, reported.cpuTotalTicks)
        metrics.memTotalBytes = min(reported.memTotalBytes, memoryBytes)
        metrics.memUsedBytes = min(reported.memUsedBytes, metrics.memTotalBytes)
        metrics.diskTotalBytes = min(reported.diskTotalBytes, diskBytes)
        metrics.diskUsedBytes = min(reported.diskUsedBytes, metrics.diskTotalBytes)
        metrics.uptimeMillis = max(0, reported.uptimeMillis)
        return metrics
    }

    package var description: String { "\(vcpus) vCPUs, \(memoryBytes >> 20) MiB memory, \(diskBytes >> 20) MiB disk" }
}

/// Runs the sampler on its interval.
package struct MetricsSamplerService: Service {
    package let sampler: MetricsSampler

    package func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: sampler.interval)
                await sampler.sampleAll()
            }
        }
    }
}
