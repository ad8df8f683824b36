import AgentClient
import AgentProtocol
import ArgumentParser
import Foundation
import OmniRunCore
import SandboxRuntime

extension OmniRun {
    /// Measures the runtime and the API side by side in one run, alternating variants
    /// to cancel drift, then bursts, density and file throughput.
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmark cold boot, restore, create → first output, bursts, density and files, side by side.")

        @OptionGroup var runtime: RuntimeOptions

        @Option(name: .shortAndLong, help: "Template to measure.")
        var template: String = "playground"

        @Option(name: .shortAndLong, help: "Runs per restore variant.")
        var runs: Int = 100

        @Flag(help: "The spec's sample size: 1,000 runs per restore variant.")
        var full = false

        @Option(help: "Cold boots (slow: each takes seconds); default runs/3 (at most 100), at least 3.")
        var coldRuns: Int?

        @Option(help: "Creates sent at once in the burst (0 skips it).")
        var burst: Int = 50

        @Option(help: "Warm pool of the server that takes the burst (default: the burst size).")
        var burstPool: Int?

        @Option(help: "Rounds of paced and of back-to-back creates in the creates phase.")
        var createRounds: Int = 30

        @Option(help: "Clients at once in the creates phase's burst.")
        var createBurst: Int = 20

        @Option(help: "Idle sandboxes for the density reading (0 skips it).")
        var density: Int = 50

        @Option(name: .customLong("file-mib"), help: "MiB uploaded and downloaded for the file throughput (0 skips it).")
        var fileMiB: Int = 100

        @Option(help: "Phases to run, comma-separated: side (side by side), files, creates, burst, density; preview (opt-in); desktop (--template desktop).")
        var phases: String = "side,files,creates,burst,density"

        @Option(help: "Write the results as JSON to this file.")
        var json: String?

        @Flag(help: "Skip the HTTP API measurements (they start `omnirun serve` children).")
        var noAPI = false

        func run() async throws {
            RuntimeFactory.bootstrapLogging(runtime.logLevel)
            let runs = full ? 1000 : self.runs
            let phases = Set(self.phases.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            let unknown = phases.subtracting(["side", "files", "creates", "preview", "burst", "density", "desktop"])
            guard unknown.isEmpty else { throw ValidationError("unknown phases: \(unknown.sorted().joined(separator: ", "))") }
            let runtime = try RuntimeFactory.makeRuntime(self.runtime, warmPool: 0)
            let pooled = try RuntimeFactory.makeRuntime(self.runtime, warmPool: 1)
            let previous = try RuntimeFactory.makeRuntime(self.runtime, warmPool: 0, previousRestorePath: true)
            do {
                try await measure(runs: runs, phases: phases, runtime: runtime, pooled: pooled, previous: previous)
            } catch {
                // Nothing this run started may outlive it.
                await pooled.destroyAll()
                await runtime.destroyAll()
                await previous.destroyAll()
                throw error
            }
        }

        private func measure(
            runs: Int, phases: Set<String>, runtime: SandboxRuntime, pooled: SandboxRuntime, previous: SandboxRuntime
        ) async throws {
            try await runtime.prepare(template: template)
            try await pooled.prepare(template: template)
            try await previous.prepare(template: template)
            let image = try runtime.catalog.image(for: template)
            var report = BenchReport(title: "OmniRun (\(template), \(runtime.driver.description))")
            var container: ContainerStart? = phases.contains("side") ? ContainerStart(rootfsImage: image.rootfs) : nil
            do { try container?.setUp() } catch {
                report.notes.append("container-style start skipped: \(error)")
                container = nil
            }
            defer { container?.tearDown() }

            var apiCold: APIBench? = nil
            var apiPool: APIBench? = nil
            let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            let snapshots = runtime.configuration.snapshotDirectory ?? runtime.configuration.dataDirectory + "/snapshots"
            if !noAPI {
                var cold = APIBench(
                    executable: executable, snapshotDirectory: snapshots, warmPool: 0, template: template,
                    parentDirectory: runtime.configuration.dataDirectory)
                var pool = APIBench(
                    executable: executable, snapshotDirectory: snapshots, warmPool: 1, template: template,
                    parentDirectory: runtime.configuration.dataDirectory)
                try await cold.start()
                try await pool.start()
                apiCold = cold
                apiPool = pool
            }
            defer {
                apiCold?.stop()
                apiPool?.stop()
            }
            let cold = phases.contains("side") ? coldRuns ?? max(3, min(runs / 3, 100)) : 0
            let total = phases.contains("side") ? max(runs, cold) : 0
            if total > 0 { progress("benchmarking \(template) on \(runtime.driver.description): \(runs) runs per variant, \(cold) cold boots\n") }
            for i in 0..<total {
                if i < cold {
                    let (ready, _) = try await measureCreate(runtime, cold: true, command: false)
                    report.add(Row.cold, ready)
                }
                if i < runs {
                    let (ready, _) = try await measureCreate(runtime, cold: false, command: false)
                    report.add(Row.restore, ready)
                    let (readyBefore, _) = try await measureCreate(previous, cold: false, command: false)
                    report.add(Row.restoreBefore, readyBefore)
                    let (_, first) = try await measureCreate(runtime, cold: false, command: true)
                    report.add(Row.restoreFirst, first)
                    await pooled.waitForPool(template)
                    let (poolReady, poolFirst) = try await measureCreate(pooled, cold: false, command: true)
                    report.add(Row.poolReady, poolReady)
                    report.add(Row.poolFirst, poolFirst)
                    if let container { report.add(Row.container, try container.startEcho()) }
                    if let apiCold, let apiPool {
                        let (restoreTiming, restoreTotal) = try await apiCold.createRunDelete()
                        report.add(Row.apiRestoreFirst, restoreTiming.firstOutput)
                        report.add(Row.apiRestoreTotal, restoreTotal)
                        try await apiPool.waitForPool()
                        let (timing, whole) = try await apiPool.createRunDelete()
                        report.add(Row.apiCreate, timing.create)
                        report.add(Row.apiFirst, timing.firstOutput)
                        report.add(Row.apiTotal, whole)
                    }
                    for (command, rows) in [("/bin/true", Row.trueRTT), ("python3 -c pass", Row.pythonRTT)] {
                        let (trip, inGuest, loop) = try await measureCommandRoundTrip(runtime, command: command)
                        report.add(rows.0, trip)
                        report.add(rows.1, inGuest)
                        report.add(rows.2, loop)
                        // The same on the previous path (QEMU with transparent huge pages).
                        let (tripBefore, _, loopBefore) = try await measureCommandRoundTrip(previous, command: command)
                        report.add(rows.0 + Row.previous, tripBefore)
                        report.add(rows.2 + Row.previous, loopBefore)
                    }
                }
                progress("\r  run \(i + 1)/\(total)")
            }
            if total > 0 { progress("\n") }
            if let apiPool {
                if phases.contains("side") {
                    for value in try await apiPool.commandRoundTrips(runs, command: "true") { report.add(Row.apiTrue, value) }
                }
                if fileMiB > 0, phases.contains("files") { try await measureFiles(apiPool, into: &report) }
                if phases.contains("preview") {
                    let preview = try await apiPool.previewRoundTrips(runs)
                    for value in preview.gatewayFresh { report.add(Row.previewFresh, value) }
                    for value in preview.gatewayKeptAlive { report.add(Row.previewKept, value) }
                    for value in preview.inGuestFresh { report.add(Row.inGuestFresh, value) }
                    for value in preview.inGuestKeptAlive { report.add(Row.inGuestKept, value) }
                }
            }
            await pooled.destroyAll()
            if !noAPI, phases.contains("creates") {
                apiPool?.stop()
                apiPool = nil
                try await CreatesBench(
                    executable: executable, snapshots: snapshots, directory: runtime.configuration.dataDirectory, template: template,
                    rounds: createRounds, burst: createBurst
                ).run(into: &report, progress: progress)
            }
            if !noAPI, burst > 0, phases.contains("burst") {
                try await measureBurst(
                    executable: executable, snapshots: snapshots, directory: runtime.configuration.dataDirectory, cold: apiCold,
                    into: &report)
            }
            apiCold?.stop()
            apiPool?.stop()
            apiCold = nil
            apiPool = nil
            if density > 0, phases.contains("density") {
                let result = try await Density(runtime: runtime, template: template, count: density).run(progress: progress)
                progress("\n")
                let pss = result.pssPerSandbox.sorted()
                report.figure("density: idle sandboxes running", Double(result.created), "")
                report.figure("density: host PSS per sandbox (median)", pss[pss.count / 2], "MiB")
                report.figure("density: host PSS per sandbox (max)", pss.last ?? 0, "MiB")
                report.figure("density: host PSS, all sandboxes", pss.reduce(0, +), "MiB")
                report.figure("density: host MemAvailable drop", result.memAvailableDropMiB, "MiB")
                report.figure("density: idle CPU per sandbox (mean)", result.idleCPUPercent.reduce(0, +) / Double(max(result.created, 1)), "% of a core")
                report.figure("density: time to start them all", result.wallSeconds, "s")
                // The same on the previous restore path (QEMU held a copy of the kernel).
                let before = try await Density(runtime: previous, template: template, count: density).run(progress: progress)
                progress("\n")
                let pssBefore = before.pssPerSandbox.sorted()
                report.figure("density (previous restore path): host PSS per sandbox (median)", pssBefore[pssBefore.count / 2], "MiB")
                report.figure("density (previous restore path): idle CPU per sandbox (mean)", before.idleCPUPercent.reduce(0, +) / Double(max(before.created, 1)), "% of a core")
            }
            if phases.contains("desktop") {
                let cold = coldRuns ?? max(1, min(runs / 3, 10))
                progress("benchmarking the desktop of \(template): \(runs) restores, \(cold) cold starts\n")
                try await DesktopBench(runtime: runtime, template: template, runs: runs, coldRuns: cold).run(into: &report, progress: progress)
            }
            await runtime.destroyAll()
            await previous.destroyAll()
            print(report.table(ordering: Row.order + CreatesBench.Row.order + DesktopBench.Row.order))
            print("")
            print(Targets(report: report).summary())
            if let json { try report.writeJSON(to: json, machine: machineDescription(runtime)) }
        }

        private func progress(_ text: String) {
            FileHandle.standardError.write(Data(text.utf8))
        }

        private func machineDescription(_ runtime: SandboxRuntime) -> [String: String] {
            [
                "cpu": HostStats.cpuModel(), "cores": "\(Foundation.ProcessInfo.processInfo.activeProcessorCount)",
                "memoryGiB": String(format: "%.1f", Double(Foundation.ProcessInfo.processInfo.physicalMemory) / 1_073_741_824),
                "driver": runtime.driver.description, "template": template,
            ]
        }

        private func measureFiles(_ api: APIBench, into report: inout BenchReport) async throws {
            let scratch = runtime.dataDir ?? NSTemporaryDirectory()
            try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            let disk = try HostStats.diskWriteRate(directory: scratch, mib: fileMiB)
            let transfer = try await api.fileTransfer(mib: fileMiB, scratch: scratch)
            report.figure("files: host disk write rate", disk, "MiB/s")
            report.figure("files: upload \(fileMiB) MiB through the API", transfer.uploadMiBps, "MiB/s")
            report.figure("files: download \(fileMiB) MiB through the API", transfer.downloadMiBps, "MiB/s")
            if let guest = transfer.guestDiskMiBps { report.figure("files: the guest's own disk write rate (dd inside)", guest, "MiB/s") }
            report.figure("files: server RSS before", transfer.serverBaselineMiB, "MiB")
            report.figure("files: server RSS peak during upload", transfer.serverPeakUploadMiB, "MiB")
            report.figure("files: server RSS peak during download", transfer.serverPeakDownloadMiB, "MiB")
        }

        /// `burst` creates at once against a server whose pool holds `burstPool`
        /// machines, and the same against the server without a pool.
        private func measureBurst(
            executable: String, snapshots: String, directory: String, cold: APIBench?, into report: inout BenchReport
        )
            async throws
        {
            let poolSize = burstPool ?? burst
            var server = APIBench(
                    executable: executable, snapshotDirectory: snapshots, warmPool: poolSize, template: template,
                    parentDirectory: directory)
            try await server.start()
            defer { server.stop() }
            progress("  burst: filling a warm pool of \(poolSize)…")
            let fillStarted = ContinuousClock.now
            try await server.waitForPool()
            let fill = (ContinuousClock.now - fillStarted).milliseconds / 1000
            let poolPSS = server.machinePSS()
            progress(" \(String(format: "%.0f", fill)) s; \(burst) creates at once…")
            let pooledBurst = await server.burst(burst)
            record(pooledBurst, label: "warm pool of \(poolSize)", into: &report)
            report.figure("burst: warm pool of \(poolSize), time to fill", fill, "s")
            report.figure("burst: warm pool of \(poolSize), PSS per pooled machine (mean)", poolPSS.reduce(0, +) / Double(max(poolPSS.count, 1)), "MiB")
            report.figure("burst: warm pool of \(poolSize), PSS of the whole pool", poolPSS.reduce(0, +), "MiB")
            server.stop()
            if let cold {
                progress(" without a pool…")
                record(await cold.burst(burst), label: "no pool", into: &report)
            }
            progress("\n")
        }

        private func record(_ burst: APIBench.Burst, label: String, into report: inout BenchReport) {
            for timing in burst.timings {
                report.add("burst of \(self.burst) (\(label)): create answered", timing.create)
                report.add("burst of \(self.burst) (\(label)): create → output of `echo ok`", timing.firstOutput)
            }
            report.figure("burst of \(self.burst) (\(label)): wall time", burst.wall, "ms")
            report.figure("burst of \(self.burst) (\(label)): failures", Double(burst.failures.count), "")
            for failure in burst.failures.prefix(3) { report.notes.append("burst (\(label)) failure: \(failure)") }
        }

        /// Returns (ms to agent ready, ms to the first output of `echo ok`).
        private func measureCreate(_ runtime: SandboxRuntime, cold: Bool, command: Bool) async throws -> (Double, Double) {
            let started = ContinuousClock.now
            let sandbox = try await runtime.create(SandboxSpec(template: template, coldBoot: cold))
            // Waits for the identity too (a pooled machine takes it after the create).
            _ = try await sandbox.health()
            let ready = (ContinuousClock.now - started).milliseconds
            var first = 0.0
            if command {
                let result = try await sandbox.exec(ProcessStartRequest(argv: ["/bin/echo", "ok"]))
                first = (ContinuousClock.now - started).milliseconds
                if result.stdoutText != "ok\n" { throw BenchError("unexpected output \(result.stdoutText)") }
            }
            await runtime.destroy(sandbox.id)
            return (ready, first)
        }

        /// Returns, for `command` on a running sandbox: ms for a round trip through the
        /// agent, the agent's own spawn→exit time for that process, and the command's
        /// cost in a shell loop inside the guest (ms per run; the guest's own cost).
        private func measureCommandRoundTrip(_ runtime: SandboxRuntime, command: String) async throws -> (Double, Double, Double) {
            let sandbox = try await runtime.create(SandboxSpec(template: template))
            let request = ProcessStartRequest(argv: command.split(separator: " ").map(String.init))
            do {
                _ = try await sandbox.exec(request)
                let started = ContinuousClock.now
                let result = try await sandbox.exec(request)
                let roundTrip = (ContinuousClock.now - started).milliseconds
                let loop = try await sandbox.exec(
                    ProcessStartRequest(
                        shell: "\(command); s=$(date +%s%N); for i in 1 2 3 4 5; do \(command); done; e=$(date +%s%N); echo $(( (e - s) / 5000 ))"))
                await runtime.destroy(sandbox.id)
                guard let micros = Double(loop.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                    throw BenchError("the in-guest loop printed \(loop.stdoutText) \(loop.stderrText)")
                }
                return (roundTrip, Double(result.durationMicros ?? 0) / 1000, micros / 1000)
            } catch {
                await runtime.destroy(sandbox.id)
                throw error
            }
        }
    }
}

/// The rows of the side-by-side table, in print order.
enum Row {
    static let cold = "cold boot → agent ready"
    static let restore = "restore → agent ready"
    static let previous = " (previous path)"
    static let restoreBefore = "restore → agent ready (previous path: whole kernel, qemu-img, health then identity)"
    static let restoreFirst = "restore → first output of `echo ok`"
    static let poolReady = "warm pool → agent ready"
    static let poolFirst = "warm pool → first output of `echo ok`"
    static let container = "container-style start (unshare + chroot) → output of `echo ok`"
    static let apiRestoreFirst = "API: create → output of `echo ok` (restore)"
    static let apiRestoreTotal = "API: create → run → delete (restore)"
    static let apiCreate = "API: create answered (warm pool)"
    static let apiFirst = "API: create → output of `echo ok` (warm pool)"
    static let apiTotal = "API: create → run → delete (warm pool)"
    static let apiTrue = "API: `true` round trip (running sandbox)"
    static let trueRTT = (
        "`true` round trip (running sandbox, agent)", "`true` spawn→exit as the agent saw it",
        "`true` in a shell loop inside the guest (per run)"
    )
    static let pythonRTT = (
        "`python3 -c pass` round trip (running sandbox, agent)", "`python3 -c pass` spawn→exit as the agent saw it",
        "`python3 -c pass` in a shell loop inside the guest (per run)"
    )
    static let previewFresh = "preview: small answer through the gateway (new connection)"
    static let previewKept = "preview: small answer through the gateway (kept-alive connection)"
    static let inGuestFresh = "preview: same request inside the guest (new connection)"
    static let inGuestKept = "preview: same request inside the guest (kept-alive connection)"
    static let order = [
        cold, restore, restoreBefore, restoreFirst, poolReady, poolFirst, container, apiRestoreFirst, apiRestoreTotal, apiCreate, apiFirst,
        apiTotal, apiTrue, trueRTT.0, trueRTT.0 + previous, trueRTT.1, trueRTT.2, trueRTT.2 + previous, pythonRTT.0, pythonRTT.0 + previous,
        pythonRTT.1, pythonRTT.2, pythonRTT.2 + previous, previewFresh, previewKept,
        inGuestFresh, inGuestKept,
    ]
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

