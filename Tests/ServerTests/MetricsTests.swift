import Foundation
import Testing
import TestSupport

@Suite("Metrics", .serialized, .timeLimit(.minutes(10)))
struct MetricsTests {
    /// Samples every second: increasing timestamps, the template's CPU count, memory and
    /// disk sizes, a CPU burn and a 64 MiB file seen in them; the server's Prometheus text.
    @Test func sandboxSamplesAndServerMetrics() async throws {
        let server = try await TestServer.start(
            name: "metrics", environment: ["OMNIRUN_IDLE_TIMEOUT": "600", "OMNIRUN_METRICS_INTERVAL": "1"])
        do {
            let client = server.client()
            let id = try await createSandbox(client, ["template": "playground", "timeout": 0])
            try await Task.sleep(for: .seconds(3))
            let before = try await client.get("/sandboxes/\(id)/metrics").array
            let written = try await client.post(
                "/sandboxes/\(id)/commands",
                ["command": "head -c 67108864 /dev/urandom > /home/user/big && sync && timeout 3 sh -c 'while :; do :; done'; true"])
            #expect(written.status == 200, "\(written.text)")
            try await Task.sleep(for: .seconds(2))
            let after = try await client.get("/sandboxes/\(id)/metrics").array
            #expect(before.count >= 2, "\(before)")
            #expect(after.count > before.count)
            let stamps = after.compactMap { $0["timestamp"] as? String }
            #expect(stamps.count == after.count && stamps == stamps.sorted() && Set(stamps).count == stamps.count)
            for item in after {
                let cpu = item["cpu_used_pct"] as? Double ?? -1
                #expect(cpu >= 0 && cpu <= 100)
                #expect(item["cpu_count"] as? Int == 1)
                let memTotal = item["mem_total"] as? Int ?? 0
                let memUsed = item["mem_used"] as? Int ?? 0
                #expect(memTotal > 150 << 20 && memTotal <= 512 << 20, "\(item)")
                #expect(memUsed > 0 && memUsed < memTotal)
                let diskTotal = item["disk_total"] as? Int ?? 0
                #expect(diskTotal > 1 << 30 && diskTotal <= 1536 << 20, "\(item)")
                #expect((item["disk_used"] as? Int ?? 0) > 100 << 20)
                #expect((item["host_mem_rss"] as? Int ?? 0) > 0)
            }
            let firstDisk = before.last?["disk_used"] as? Int ?? 0
            let lastDisk = after.last?["disk_used"] as? Int ?? 0
            #expect(lastDisk - firstDisk > 60 << 20, "disk \(firstDisk) → \(lastDisk)")
            #expect(after.contains { ($0["cpu_used_pct"] as? Double ?? 0) > 50 }, "the CPU burn is not seen: \(after.map { $0["cpu_used_pct"] ?? 0 })")
            #expect(try await client.get("/sandboxes/\(id)/metrics?limit=2").array.count == 2)

            let prometheus = try await HTTPTestClient(baseURL: server.baseURL, apiKey: nil).get("/metrics")
            #expect(prometheus.status == 200 && prometheus.header("Content-Type")?.hasPrefix("text/plain") == true)
            let lines = Set(prometheus.text.split(separator: "\n").map(String.init))
            #expect(lines.contains("omnirun_sandboxes{state=\"running\"} 1"), "\(prometheus.text)")
            #expect(lines.contains("omnirun_sandboxes{state=\"paused\"} 0"))
            #expect(lines.contains("omnirun_sandbox_create_seconds_count 1"))
            #expect(lines.contains("omnirun_commands_total{kind=\"foreground\"} 1"))
            #expect(lines.contains("omnirun_sandboxes_created_total 1"))

            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
            #expect(try await client.get("/sandboxes/\(id)/metrics").status == 404)
            let ended = try await HTTPTestClient(baseURL: server.baseURL, apiKey: nil).get("/metrics").text
            #expect(ended.contains("omnirun_sandboxes_ended_total{reason=\"killed\"} 1"))
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
