import AgentClient
import AgentProtocol
import ArgumentParser
import Foundation
import OmniRunCore
import SandboxRuntime

extension OmniRun {
    /// Measures the runtime side by side in one run, alternating variants to cancel drift.
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmark cold boot, snapshot restore and first command, side by side.")

        @OptionGroup var runtime: RuntimeOptions

        @Option(name: .shortAndLong, help: "Template to measure.")
        var template: String = "playground"

        @Option(name: .shortAndLong, help: "Runs per restore variant.")
        var runs: Int = 30

        @Option(help: "Cold boots (slow: each takes seconds); default runs/3, at least 3.")
        var coldRuns: Int?

        @Option(help: "Write the results as JSON to this file.")
        var json: String?

        @Flag(help: "Skip the HTTP API measurements (they start an `omnirun serve` child).")
        var noAPI = false

        func run() async throws {
            RuntimeFactory.bootstrapLogging(runtime.logLevel)
            let runtime = try RuntimeFactory.makeRuntime(self.runtime, warmPool: 0)
            let pooled = try RuntimeFactory.makeRuntime(self.runtime, warmPool: 1)
            try await runtime.prepare(template: template)
            try await pooled.prepare(template: template)
            var samples: [String: [Double]] = [:]
            var apiCold: APIBench? = nil
            var apiPool: APIBench? = nil
            if !noAPI {
                let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
                let snapshots = runtime.configuration.snapshotDirectory ?? runtime.configuration.dataDirectory + "/snapshots"
                var cold = APIBench(executable: executable, snapshotDirectory: snapshots, warmPool: 0, template: template)
                var pool = APIBench(executable: executable, snapshotDirectory: snapshots, warmPool: 1, template: template)
                try await cold.start()
                try await pool.start()
                apiCold = cold
                apiPool = pool
            }
            let cold = coldRuns ?? max(3, runs / 3)
            let total = max(runs, cold)
            FileHandle.standardError.write(Data("benchmarking \(template) on \(runtime.driver.description): \(runs) restores, \(cold) cold boots\n".utf8))
            for i in 0..<total {
                if i < cold {
                    let (ready, _) = try await measureCreate(runtime, cold: true, command: false)
                    samples["cold boot → agent ready", default: []].append(ready)
                }
                if i < runs {
                    let (ready, _) = try await measureCreate(runtime, cold: false, command: false)
                    samples["restore → agent ready", default: []].append(ready)
                    let (_, first) = try await measureCreate(runtime, cold: false, command: true)
                    samples["restore → first output of `echo ok`", default: []].append(first)
                    await pooled.waitForPool(template)
                    let (poolReady, poolFirst) = try await measureCreate(pooled, cold: false, command: true)
                    samples["warm pool → agent ready", default: []].append(poolReady)
                    samples["warm pool → first output of `echo ok`", default: []].append(poolFirst)
                    if let apiCold, let apiPool {
                        let (first, total) = try await apiCold.createRunDelete()
                        samples["API: create → output of `echo ok` (restore)", default: []].append(first)
                        samples["API: create → run → delete (restore)", default: []].append(total)
                        try await apiPool.waitForPool()
                        let (poolFirst, poolTotal) = try await apiPool.createRunDelete()
                        samples["API: create → output of `echo ok` (warm pool)", default: []].append(poolFirst)
                        samples["API: create → run → delete (warm pool)", default: []].append(poolTotal)
                    }
                    let (warm, inGuest) = try await measureCommandRoundTrip(runtime)
                    samples["`true` round trip (running sandbox)", default: []].append(warm)
                    samples["`true` spawn→exit inside the guest", default: []].append(inGuest)
                }
                FileHandle.standardError.write(Data("\r  run \(i + 1)/\(total)".utf8))
            }
            FileHandle.standardError.write(Data("\n".utf8))
            if let apiPool {
                samples["API: `true` round trip (running sandbox)"] = try await apiPool.commandRoundTrips(runs)
            }
            apiCold?.stop()
            apiPool?.stop()
            let report = BenchReport(
                title: "OmniRun runtime (\(template), \(runtime.driver.description))", samples: samples,
                order: [
                    "cold boot → agent ready", "restore → agent ready", "restore → first output of `echo ok`",
                    "warm pool → agent ready", "warm pool → first output of `echo ok`",
                    "API: create → output of `echo ok` (restore)", "API: create → run → delete (restore)",
                    "API: create → output of `echo ok` (warm pool)", "API: create → run → delete (warm pool)",
                    "API: `true` round trip (running sandbox)",
                    "`true` round trip (running sandbox)", "`true` spawn→exit inside the guest",
                ])
            print(report.table())
            let coldP50 = report.percentile("cold boot → agent ready", 50)
            let restoreP50 = report.percentile("restore → agent ready", 50)
            if coldP50 > 0 {
                print(String(format: "restore / cold boot (p50): %.3f×", restoreP50 / coldP50))
                print(String(format: "first output / cold boot (p50): %.3f×", report.percentile("restore → first output of `echo ok`", 50) / coldP50))
            }
            if coldP50 > 0 {
                print(String(format: "warm-pool create / cold boot (p50): %.3f×", report.percentile("warm pool → agent ready", 50) / coldP50))
            }
            await pooled.destroyAll()
            await runtime.destroyAll()
            print(String(format: "round trip / in-guest cost (p50): %.2f×",
                report.percentile("`true` round trip (running sandbox)", 50) / max(report.percentile("`true` spawn→exit inside the guest", 50), 0.001)))
            if let json { try report.writeJSON(to: json) }
        }

        /// Returns (ms to agent ready, ms to the first output of `echo ok`).
        private func measureCreate(_ runtime: SandboxRuntime, cold: Bool, command: Bool) async throws -> (Double, Double) {
            let started = ContinuousClock.now
            let sandbox = try await runtime.create(SandboxSpec(template: template, coldBoot: cold))
            let ready = (ContinuousClock.now - started).milliseconds
            var first = 0.0
            if command {
                let result = try await sandbox.agent.run(ProcessStartRequest(argv: ["/bin/echo", "ok"]))
                first = (ContinuousClock.now - started).milliseconds
                if result.stdoutText != "ok\n" { throw BenchError("unexpected output \(result.stdoutText)") }
            }
            await runtime.destroy(sandbox.id)
            return (ready, first)
        }

        /// Returns (ms for a `true` round trip on a running sandbox, ms the guest itself spends).
        private func measureCommandRoundTrip(_ runtime: SandboxRuntime) async throws -> (Double, Double) {
            let sandbox = try await runtime.create(SandboxSpec(template: template))
            defer { Task { await runtime.destroy(sandbox.id) } }
            _ = try await sandbox.agent.run(ProcessStartRequest(argv: ["/bin/true"]))
            let started = ContinuousClock.now
            let result = try await sandbox.agent.run(ProcessStartRequest(argv: ["/bin/true"]))
            let roundTrip = (ContinuousClock.now - started).milliseconds
            // The same process's spawn-to-exit time as the guest measured it.
            let guestMicros = Double(result.durationMicros ?? 0)
            await runtime.destroy(sandbox.id)
            return (roundTrip, guestMicros / 1000)
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Duration {
    var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}

/// Percentiles of named samples, printed as a table and saved as JSON.
struct BenchReport {
    var title: String
    var samples: [String: [Double]]
    var order: [String]

    func percentile(_ name: String, _ p: Double) -> Double {
        guard let values = samples[name]?.sorted(), !values.isEmpty else { return 0 }
        let rank = Int((p / 100 * Double(values.count - 1)).rounded(.up))
        return values[min(max(rank, 0), values.count - 1)]
    }

    func table() -> String {
        var lines = ["## \(title)", "", "| measurement | n | p50 ms | p95 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
        for name in order where samples[name] != nil {
            let n = samples[name]!.count
            lines.append(
                String(
                    format: "| %@ | %d | %.1f | %.1f | %.1f | %.1f |", name, n, percentile(name, 50), percentile(name, 95),
                    percentile(name, 99), percentile(name, 100)))
        }
        return lines.joined(separator: "\n")
    }

    func writeJSON(to path: String) throws {
        var object: [String: Any] = ["title": title, "date": ISO8601DateFormatter().string(from: Date())]
        var results: [String: Any] = [:]
        for (name, values) in samples {
            results[name] = [
                "n": values.count, "p50": percentile(name, 50), "p95": percentile(name, 95), "p99": percentile(name, 99),
                "max": percentile(name, 100), "samples": values,
            ]
        }
        object["results"] = results
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }
}
