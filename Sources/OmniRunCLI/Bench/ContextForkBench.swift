import ArgumentParser
import Foundation

extension OmniRun {
    /// Code contexts and fork, measured over the HTTP API of an `omnirun serve` child (no
    /// warm pool, so a plain create is a restore like every copy): a context execute of
    /// `1+1` beside `python3 -c` as a command, and fork of 1 and of 10 copies beside a create.
    struct BenchFork: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench-fork", abstract: "Benchmark code context round trips and fork latency against plain runs and creates.")

        @OptionGroup var runtime: RuntimeOptions

        @Option(name: .shortAndLong, help: "Template of the sandboxes (it needs code contexts).")
        var template: String = "playground"

        @Option(name: .shortAndLong, help: "Repetitions of each measurement (fork of 10: a third as many, at least 2).")
        var runs: Int = 5

        func run() async throws {
            RuntimeFactory.bootstrapLogging(runtime.logLevel)
            guard runs > 0 else { throw ValidationError("--runs must be at least 1") }
            let sandboxes = try RuntimeFactory.makeRuntime(self.runtime, warmPool: 0)
            let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            let snapshots = sandboxes.configuration.snapshotDirectory ?? sandboxes.configuration.dataDirectory + "/snapshots"
            var server = APIBench(
                executable: executable, snapshotDirectory: snapshots, warmPool: 0, template: template,
                parentDirectory: sandboxes.configuration.dataDirectory)
            try await server.start()
            defer { server.stop() }
            print("contexts and fork over the API, \(sandboxes.driver.description), template \(template), \(runs) runs, no warm pool")

            let id = try await create(server)
            // The first context of a sandbox starts the service and a kernel; a second only a kernel.
            let ((status, context), first) = try await timed {
                try await server.request("POST", "/sandboxes/\(id)/contexts", json: ["language": "python"])
            }
            guard status == 200, let ctx = context["id"] as? String else { throw BenchError("context create answered \(status): \(context)") }
            let ((_, second), secondTook) = try await timed {
                try await server.request("POST", "/sandboxes/\(id)/contexts", json: ["language": "python"])
            }
            if let other = second["id"] as? String { _ = try await server.request("DELETE", "/sandboxes/\(id)/contexts/\(other)") }
            print(String(format: "first context create         %7.0f ms   (second: %.0f ms)", first, secondTook))
            var executes: [Double] = []
            var commands: [Double] = []
            for index in 0...runs {
                let (executed, took) = try await timed { try await server.request("POST", "/sandboxes/\(id)/contexts/\(ctx)/execute", json: ["code": "1+1"]) }
                let text = ((executed.1["results"] as? [[String: Any]])?.first?["text"] as? String)
                guard text == "2" else { throw BenchError("1+1 gave \(executed.1)") }
                let (ran, ranTook) = try await timed {
                    try await server.request("POST", "/sandboxes/\(id)/commands", json: ["command": "python3 -c 'print(1+1)'"])
                }
                guard ran.1["stdout"] as? String == "2\n" else { throw BenchError("python3 -c gave \(ran.1)") }
                if index > 0 {  // the first of each warms the paths up
                    executes.append(took)
                    commands.append(ranTook)
                }
            }
            _ = try await server.request("DELETE", "/sandboxes/\(id)")
            print(String(format: "context execute 1+1      p50 %7.0f ms   (min %.0f, max %.0f)", median(executes), executes.min() ?? 0, executes.max() ?? 0))
            print(String(format: "command python3 -c       p50 %7.0f ms   (min %.0f, max %.0f)", median(commands), commands.min() ?? 0, commands.max() ?? 0))

            var creates: [Double] = []
            for _ in 0..<runs {
                let started = ContinuousClock.now
                let made = try await create(server)
                creates.append((ContinuousClock.now - started).milliseconds)
                _ = try await server.request("DELETE", "/sandboxes/\(made)")
            }
            print(String(format: "create (restore)         p50 %7.0f ms   (min %.0f, max %.0f)", median(creates), creates.min() ?? 0, creates.max() ?? 0))
            for count in [1, 10] {
                var forks: [Double] = []
                for _ in 0..<(count == 1 ? runs : max(2, runs / 3)) {
                    let parent = try await create(server)
                    // Something to carry over: a context with a variable.
                    let (_, made) = try await server.request("POST", "/sandboxes/\(parent)/contexts", json: ["language": "python"])
                    if let ctx = made["id"] as? String {
                        _ = try await server.request("POST", "/sandboxes/\(parent)/contexts/\(ctx)/execute", json: ["code": "x = 42"])
                    }
                    let ((status, forked), took) = try await timed {
                        try await server.request("POST", "/sandboxes/\(parent)/fork", json: ["count": count])
                    }
                    let copies = (forked["sandboxes"] as? [[String: Any]] ?? []).compactMap { $0["sandboxID"] as? String }
                    guard status == 201, copies.count == count else { throw BenchError("fork answered \(status): \(forked)") }
                    forks.append(took)
                    for copy in copies + [parent] { _ = try await server.request("DELETE", "/sandboxes/\(copy)") }
                }
                print(
                    String(
                        format: "fork %2d %@         p50 %7.0f ms   (min %.0f, max %.0f; %d runs)", count, count == 1 ? "copy  " : "copies",
                        median(forks), forks.min() ?? 0, forks.max() ?? 0, forks.count))
            }
        }

        private func create(_ server: APIBench) async throws -> String {
            let (status, created) = try await server.request("POST", "/sandboxes", json: ["template": template, "timeout": 600])
            guard status == 201, let id = created["sandboxID"] as? String else { throw BenchError("create answered \(status): \(created)") }
            return id
        }

        private func timed<T>(_ work: () async throws -> T) async throws -> (T, Double) {
            let started = ContinuousClock.now
            let value = try await work()
            return (value, (ContinuousClock.now - started).milliseconds)
        }

        private func median(_ values: [Double]) -> Double {
            values.isEmpty ? 0 : values.sorted()[values.count / 2]
        }
    }
}
