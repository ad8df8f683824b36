import ArgumentParser
import Foundation
import SandboxRuntime

extension OmniRun {
    /// Sandboxes with internet access beside air-gapped ones, through a real server:
    /// create latency (alternating, no warm pool, so both are snapshot restores), then a
    /// small answer through the preview gateway beside the same request inside the guest.
    struct BenchNetwork: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench-network",
            abstract: "Benchmark creates with internet access beside air-gapped ones, and the preview gateway beside an in-guest request.")

        @OptionGroup var runtime: RuntimeOptions

        @Option(name: .shortAndLong, help: "Template of the sandboxes.")
        var template: String = "playground"

        @Option(name: .shortAndLong, help: "Creates of each kind, and preview requests.")
        var runs: Int = 10

        func run() async throws {
            RuntimeFactory.bootstrapLogging(runtime.logLevel)
            guard runs > 0 else { throw ValidationError("--runs must be at least 1") }
            let sandboxes = try RuntimeFactory.makeRuntime(self.runtime, warmPool: 0)
            if let reason = await sandboxes.network.availability() {
                throw ValidationError("internet access is not available here: \(reason)")
            }
            let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            let snapshots = sandboxes.configuration.snapshotDirectory ?? sandboxes.configuration.dataDirectory + "/snapshots"
            try await sandboxes.prepare(template: template)
            try await sandboxes.prepareNetworkSnapshot(template: template)
            var server = APIBench(
                executable: executable, snapshotDirectory: snapshots, warmPool: 0, template: template,
                parentDirectory: sandboxes.configuration.dataDirectory + "/bench-network")
            try await server.start()
            defer {
                server.stop()
                let tag = HostNetwork.tag(forDataDirectory: server.serverDataDirectory)
                Self.tool(["/usr/sbin/nft", "delete", "table", "inet", HostNetwork.hostTableName(tag: tag)])
            }
            var airGapped: [Double] = []
            var online: [Double] = []
            _ = try await createAndDelete(server, internet: true)  // untimed: first use of the path
            for _ in 0..<runs {
                airGapped.append(try await createAndDelete(server, internet: false))
                online.append(try await createAndDelete(server, internet: true))
            }
            let preview = try await server.previewRoundTrips(runs)
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            func p90(_ values: [Double]) -> Double { values.sorted()[min(values.count - 1, values.count * 9 / 10)] }
            print("network, \(sandboxes.driver.description), \(template), \(runs) runs each (medians; p90 in brackets)")
            print(String(format: "create, air-gapped            %7.1f ms  (%.1f)", median(airGapped), p90(airGapped)))
            print(String(format: "create, internet: true        %7.1f ms  (%.1f)", median(online), p90(online)))
            print(
                String(
                    format: "preview via gateway, new conn %7.2f ms  (%.2f)   in guest, new conn %7.2f ms  (%.2f)",
                    median(preview.gatewayFresh), p90(preview.gatewayFresh), median(preview.inGuestFresh), p90(preview.inGuestFresh)))
            print(
                String(
                    format: "preview via gateway, kept     %7.2f ms  (%.2f)   in guest, kept     %7.2f ms  (%.2f)",
                    median(preview.gatewayKeptAlive), p90(preview.gatewayKeptAlive), median(preview.inGuestKeptAlive),
                    p90(preview.inGuestKeptAlive)))
        }

        /// The create's round trip in ms; the sandbox answers a command before it is deleted.
        private func createAndDelete(_ server: APIBench, internet: Bool) async throws -> Double {
            var body: [String: Any] = ["template": template, "timeout": 300]
            if internet { body["internet"] = true }
            let started = ContinuousClock.now
            let (status, created) = try await server.request("POST", "/sandboxes", json: body)
            let elapsed = (ContinuousClock.now - started).milliseconds
            guard status == 201, let id = created["sandboxID"] as? String else {
                throw BenchError("create (internet: \(internet)) answered \(status): \(created)")
            }
            let (_, run) = try await server.request("POST", "/sandboxes/\(id)/commands", json: ["command": "ls /sys/class/net"])
            let links = run["stdout"] as? String ?? ""
            _ = try await server.request("DELETE", "/sandboxes/\(id)")
            guard links.contains("eth0") == internet else { throw BenchError("unexpected devices (internet: \(internet)): \(links)") }
            return elapsed
        }

        static func tool(_ argv: [String]) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: argv[0])
            process.arguments = Array(argv.dropFirst())
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try? process.run()
            process.waitUntilExit()
        }
    }
}
