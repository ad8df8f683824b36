import AgentProtocol
import Foundation
import SandboxRuntime

/// Many idle sandboxes at once: what each costs the host in memory (PSS: pages
/// shared with the other sandboxes, such as the snapshot file, count once in
/// total) and in CPU while idle.
struct Density {
    let runtime: SandboxRuntime
    let template: String
    let count: Int
    /// How long the sandboxes sit idle before and during the CPU reading.
    var settle: Duration = .seconds(5)
    var window: Duration = .seconds(10)

    struct Result {
        var created: Int
        var pssPerSandbox: [Double]  // MiB
        var idleCPUPercent: [Double]  // % of one core per sandbox
        var memAvailableDropMiB: Double
        var wallSeconds: Double
    }

    func run(progress: (String) -> Void) async throws -> Result {
        let before = HostStats.memAvailable() ?? 0
        let started = ContinuousClock.now
        var sandboxes: [Sandbox] = []
        defer {
            let all = sandboxes
            Task { for sandbox in all { await runtime.destroy(sandbox.id) } }
        }
        // Create in small parallel batches (the runtime bounds parallel restores anyway).
        var next = 0
        while next < count {
            let batch = min(4, count - next)
            try await withThrowingTaskGroup(of: Sandbox.self) { group in
                for _ in 0..<batch {
                    group.addTask {
                        let sandbox = try await runtime.create(SandboxSpec(template: template))
                        let result = try await sandbox.exec(ProcessStartRequest(shell: "echo ok"))
                        guard result.stdoutText == "ok\n" else { throw BenchError("unexpected output \(result.stdoutText)") }
                        return sandbox
                    }
                }
                for try await sandbox in group { sandboxes.append(sandbox) }
            }
            next += batch
            progress("\r  density: \(sandboxes.count)/\(count) sandboxes running")
        }
        let wall = (ContinuousClock.now - started).milliseconds / 1000
        try await Task.sleep(for: settle)
        let pids = sandboxes.map { $0.machine.processID }
        let cpuBefore = pids.map { HostStats.cpuSeconds($0) ?? 0 }
        let windowStart = ContinuousClock.now
        try await Task.sleep(for: window)
        let seconds = (ContinuousClock.now - windowStart).milliseconds / 1000
        let cpu = zip(pids, cpuBefore).map { pid, before in ((HostStats.cpuSeconds(pid) ?? before) - before) / seconds * 100 }
        let pss = pids.map { Double(HostStats.pss($0) ?? 0) / 1_048_576 }
        let after = HostStats.memAvailable() ?? 0
        let all = sandboxes
        sandboxes = []
        await withTaskGroup(of: Void.self) { group in
            for sandbox in all { group.addTask { await runtime.destroy(sandbox.id) } }
        }
        return Result(
            created: pids.count, pssPerSandbox: pss, idleCPUPercent: cpu,
            memAvailableDropMiB: Double(before - after) / 1_048_576, wallSeconds: wall)
    }
}
