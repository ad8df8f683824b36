import AgentProtocol
import ArgumentParser
import Foundation
import OmniRunCore
import SandboxRuntime

extension OmniRun {
    /// Pause and resume, measured on the runtime (no server): for each guest memory size,
    /// `runs` sandboxes are created, given some work (a process holding `--touch-mib` of
    /// memory), paused, resumed and destroyed; medians of the latencies and of the disk a
    /// paused sandbox uses.
    struct BenchPause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench-pause", abstract: "Benchmark pause and resume (latency and disk used) for several guest sizes.")

        @OptionGroup var runtime: RuntimeOptions

        @Option(name: .shortAndLong, help: "Template whose image the guests boot.")
        var template: String = "playground"

        @Option(help: "Guest memory sizes in MiB, comma-separated (a variant of the template per size).")
        var memory: String = "256,1024"

        @Option(name: .shortAndLong, help: "Pause/resume cycles per size.")
        var runs: Int = 10

        @Option(help: "MiB a process in the guest allocates and fills before the pause (0: an idle guest).")
        var touchMiB: Int = 64

        func run() async throws {
            RuntimeFactory.bootstrapLogging(runtime.logLevel)
            let sizes = memory.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 128 }), runs > 0 else {
                throw ValidationError("--memory takes sizes of at least 128 MiB; --runs at least 1")
            }
            let sandboxes = try RuntimeFactory.makeRuntime(self.runtime, warmPool: 0)
            let manifests = sandboxes.catalog.extraManifestDirectories.first ?? NSTemporaryDirectory()
            try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
            let base = try sandboxes.catalog.template(named: template)
            var written: [String] = []
            defer { for path in written { try? FileManager.default.removeItem(atPath: path) } }
            print("pause/resume, \(sandboxes.driver.description), \(runs) cycles per size, \(touchMiB) MiB touched by a process")
            print("guest     pause p50  resume p50  state p50   disk p50    (min–max pause / resume)")
            for size in sizes {
                // A variant of the template with this much memory (its own snapshot).
                let name = "\(base.image.template)-bench-\(size)m"
                let path = manifests + "/\(name).json"
                try Self.writeVariant(of: template, catalog: sandboxes.catalog, name: name, memoryMB: size, to: path)
                written.append(path)
                do {
                    try await measure(name, size: size, runtime: sandboxes)
                } catch {
                    await sandboxes.destroyAll()
                    throw error
                }
            }
            await sandboxes.destroyAll()
        }

        private func measure(_ name: String, size: Int, runtime: SandboxRuntime) async throws {
            try await runtime.prepare(template: name)
            var pauses: [Double] = []
            var resumes: [Double] = []
            var states: [Double] = []
            var disks: [Double] = []
            for _ in 0..<runs {
                let sandbox = try await runtime.create(SandboxSpec(template: name))
                if touchMiB > 0 {
                    _ = try await sandbox.start(
                        ProcessStartRequest(
                            shell: "python3 -c 'import os,time; b=bytearray(os.urandom(\(touchMiB << 20))); print(1, flush=True); time.sleep(3600)'"))
                    // Wait until the memory is filled (the process printed its line).
                    for _ in 0..<600 {
                        let listed = try await sandbox.processes()
                        if let pid = listed.first?.pid, let output = try? await sandbox.process(pid: pid).output(),
                            !output.stdout.isEmpty
                        {
                            break
                        }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                let start = ContinuousClock.now
                let paused = try await runtime.pause(sandbox.id)
                let paused1 = ContinuousClock.now
                disks.append(Double(SandboxRuntime.diskUsage(of: paused.directory)))
                states.append(Double(SandboxRuntime.diskUsage(of: paused.stateFile)))
                let resumed = try await runtime.resume(sandbox.id, template: name)
                let resumed1 = ContinuousClock.now
                runtime.discardPausedState(sandbox.id)
                _ = try await resumed.run("true")
                pauses.append(Self.seconds(paused1 - start))
                resumes.append(Self.seconds(resumed1 - paused1))
                await runtime.destroy(sandbox.id)
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            print(
                String(
                    format: "%5d MiB  %7.0f ms  %8.0f ms  %6.0f MiB  %6.0f MiB  (%.0f–%.0f / %.0f–%.0f ms)", size,
                    median(pauses) * 1000, median(resumes) * 1000, median(states) / 1_048_576, median(disks) / 1_048_576,
                    (pauses.min() ?? 0) * 1000, (pauses.max() ?? 0) * 1000, (resumes.min() ?? 0) * 1000,
                    (resumes.max() ?? 0) * 1000))
        }

        static func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }

        /// The template's manifest with another memory size and name.
        static func writeVariant(of template: String, catalog: ImageCatalog, name: String, memoryMB: Int, to path: String) throws {
            let resolved = catalog.resolve(template)
            let source = catalog.cacheDirectory + "/images/\(resolved).json"
            guard let data = FileManager.default.contents(atPath: source),
                var manifest = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { throw ValidationError("template \(template) is not built (no \(source))") }
            manifest["template"] = name
            manifest["memoryMB"] = memoryMB
            try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path))
        }
    }
}
