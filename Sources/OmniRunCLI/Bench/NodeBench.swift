import ArgumentParser
import Foundation
import SandboxRuntime

extension OmniRun {
    /// Node templates side by side: from a create's call to the end of a first `node -e 1`
    /// in the new sandbox, alternating between the templates (no warm pool: every create is
    /// a snapshot restore), so that they share the host's load alike.
    struct BenchNode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench-node",
            abstract: "Benchmark create → `node -e 1` for Node templates side by side (e.g. node-22 beside javascript).")

        @OptionGroup var runtime: RuntimeOptions

        @Option(name: .shortAndLong, parsing: .upToNextOption, help: "Templates to compare.")
        var templates: [String] = ["node-22", "javascript"]

        @Option(name: .shortAndLong, help: "Creates of each template.")
        var runs: Int = 10

        func run() async throws {
            RuntimeFactory.bootstrapLogging(runtime.logLevel)
            guard runs > 0, !templates.isEmpty else { throw ValidationError("--runs must be at least 1 and --templates name one") }
            let sandboxes = try RuntimeFactory.makeRuntime(self.runtime, warmPool: 0)
            var versions: [String: String] = [:]
            for template in templates {
                try await sandboxes.prepare(template: template)
                // Untimed: the first run of the path after the snapshot.
                versions[template] = try await createAndRun(sandboxes, template).version
            }
            var samples: [String: [(total: Double, create: Double)]] = [:]
            for _ in 0..<runs {
                for template in templates {
                    let sample = try await createAndRun(sandboxes, template)
                    samples[template, default: []].append((sample.milliseconds, sample.create))
                }
            }
            await sandboxes.destroyAll()
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            func p90(_ values: [Double]) -> Double { values.sorted()[min(values.count - 1, values.count * 9 / 10)] }
            print("create → node -e 1, \(sandboxes.driver.description), \(runs) runs each, no warm pool (median, p90 in brackets)")
            for template in templates {
                let values = samples[template] ?? []
                let totals = values.map(\.total)
                let creates = values.map(\.create)
                let nodes = values.map { $0.total - $0.create }
                print(
                    String(
                        format: "%@ total %7.1f ms (%.1f)   create %7.1f ms (%.1f)   node -e 1 %7.1f ms (%.1f)   node %@",
                        template.padding(toLength: 20, withPad: " ", startingAt: 0), median(totals), p90(totals), median(creates),
                        p90(creates), median(nodes), p90(nodes), versions[template] ?? "?"))
            }
        }

        /// From the create's call to the end of `node -e 1` and to the create's answer, in ms;
        /// and the version of that node.
        private func createAndRun(_ sandboxes: SandboxRuntime, _ template: String) async throws
            -> (milliseconds: Double, create: Double, version: String)
        {
            let started = ContinuousClock.now
            let sandbox = try await sandboxes.create(SandboxSpec(template: template))
            let created = ContinuousClock.now - started
            let result = try await sandbox.run("node -e 1", timeoutMillis: 120_000)
            let elapsed = ContinuousClock.now - started
            let version = try await sandbox.run("node --version").stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
            await sandboxes.destroy(sandbox.id)
            guard result.exitCode == 0 else { throw BenchError("node -e 1 in \(template) failed: \(result.stderrText)") }
            func ms(_ duration: Duration) -> Double {
                Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
            }
            return (ms(elapsed), ms(created), version)
        }
    }
}
