import Foundation

/// Creates that keep up: through the HTTP API, one client's creates paced (each finds
/// the pool refilled) against back-to-back (create → `echo ok` → delete, again at once),
/// and a burst of clients at once against the run's own CPU floor. Two servers run side
/// by side: one with the warm pool following demand (`auto`, the default) and one with
/// the fixed pool of one machine that was the default before.
struct CreatesBench {
    let executable: String
    let snapshots: String
    let directory: String
    let template: String
    var rounds: Int
    var burst: Int

    enum Row {
        static let paced = "creates: paced create → run → delete (auto pool, a hit each)"
        static let backToBack = "creates: back-to-back create → run → delete (auto pool)"
        static let backToBackFixed = "creates: back-to-back create → run → delete (fixed pool of 1)"
        static func burst(_ count: Int, _ label: String) -> String { "creates: burst of \(count), create → output of `echo ok` (\(label))" }
        static let cpuPerCreate = "creates: CPU-seconds one create costs (its refill included)"
        static let order = [paced, backToBack, backToBackFixed]
    }

    func run(into report: inout BenchReport, progress: (String) -> Void) async throws {
        var auto = APIBench(executable: executable, snapshotDirectory: snapshots, pool: "auto", template: template, parentDirectory: directory)
        var fixed = APIBench(executable: executable, snapshotDirectory: snapshots, pool: "1", template: template, parentDirectory: directory)
        try await auto.start()
        defer { auto.stop() }
        try await fixed.start()
        defer { fixed.stop() }
        try await auto.waitForPool()
        try await fixed.waitForPool()

        // Paced: each create finds the pool full again; the host's busy CPU time from the
        // create until the pool is whole again is what one create costs.
        var cpu: [Double] = []
        for round in 0..<rounds {
            try await auto.waitForPool()
            try await Task.sleep(for: .milliseconds(300))
            let busyBefore = HostStats.busyCPUSeconds() ?? 0
            let (_, whole) = try await auto.createRunDelete()
            report.add(Row.paced, whole)
            try await auto.waitForPool()
            // The deleted machine's teardown and the refill's last exchanges settle.
            try await Task.sleep(for: .milliseconds(200))
            cpu.append((HostStats.busyCPUSeconds() ?? 0) - busyBefore)
            progress("\r  creates: paced \(round + 1)/\(rounds)")
        }
        let (_, pacedTarget) = try await auto.pool()
        // Back-to-back: the old fixed pool of one, then the pool that follows demand.
        for (server, row) in [(fixed, Row.backToBackFixed), (auto, Row.backToBack)] {
            for round in 0..<rounds {
                let (_, whole) = try await server.createRunDelete()
                report.add(row, whole)
                progress("\r  creates: back-to-back (\(server.warmPool)) \(round + 1)/\(rounds)")
            }
        }
        let (_, grownTarget) = try await auto.pool()
        // A burst against the pool as the server sized it after that demand.
        progress("\r  creates: the auto pool refills to \(grownTarget)…                      ")
        try await auto.waitForPool()
        try await Task.sleep(for: .seconds(1))
        progress("\r  creates: burst of \(burst)…                                  ")
        let autoBurst = await auto.burst(burst)
        for timing in autoBurst.timings { report.add(Row.burst(burst, "auto pool"), timing.firstOutput) }
        report.figure("creates: burst of \(burst) (auto pool): failures", Double(autoBurst.failures.count), "")
        for failure in autoBurst.failures.prefix(3) { report.notes.append("creates burst failure: \(failure)") }
        try await fixed.waitForPool()
        try await Task.sleep(for: .seconds(1))
        let fixedBurst = await fixed.burst(burst)
        for timing in fixedBurst.timings { report.add(Row.burst(burst, "fixed pool of 1"), timing.firstOutput) }
        progress("\n")

        let cores = Double(max(1, Foundation.ProcessInfo.processInfo.activeProcessorCount))
        let sortedCPU = cpu.sorted()
        let perCreate = sortedCPU.isEmpty ? 0 : sortedCPU[sortedCPU.count / 2]
        report.figure(Row.cpuPerCreate + " (median)", perCreate, "s")
        report.figure("creates: CPU floor of a burst of \(burst) (per create × \(burst) ÷ \(Int(cores)) cores)", perCreate * Double(burst) / cores * 1000, "ms")
        report.figure("creates: auto pool target while paced", Double(pacedTarget), "")
        report.figure("creates: auto pool target after back-to-back", Double(grownTarget), "")
        report.figure("creates: auto pool target after the burst", Double((try? await auto.pool().target) ?? 0), "")
    }
}
