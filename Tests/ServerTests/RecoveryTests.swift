import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Server restart and idle", .serialized, .timeLimit(.minutes(10)))
struct RecoveryTests {
    @Test func killNineLosesNoSandboxAndReportsTheDeadOne() async throws {
        let server = try await TestServer.start(name: "recovery", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
        do {
            let client = server.client()
            let survivor = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let victim = try await createSandbox(client, ["template": "playground", "timeout": 0])
            _ = try await client.post("/sandboxes/\(survivor)/files", ["path": "/tmp/keep.txt", "content": "still here"])
            let bg = try await client.post("/sandboxes/\(survivor)/commands", ["command": "sleep 600", "background": true])
            let pid = bg.object["pid"] as? Int ?? 0

            server.crash()
            // Behind the server's back, the victim's VM dies too.
            for qemu in hostProcesses(matching: server.dataDirectory + "/sandboxes/\(victim)/") { kill(qemu, SIGKILL) }
            try await Task.sleep(for: .milliseconds(500))
            try await server.restart()

            let read = try await client.get("/sandboxes/\(survivor)/files?path=%2Ftmp%2Fkeep.txt")
            #expect(read.object["content"] as? String == "still here", "\(read.text)")
            let process = try await client.get("/sandboxes/\(survivor)/commands/\(pid)")
            #expect(process.object["running"] as? Bool == true)
            let run = try await client.post("/sandboxes/\(survivor)/commands", ["command": "echo alive"])
            #expect(run.object["stdout"] as? String == "alive\n")
            #expect(try await client.get("/sandboxes/\(victim)").status == 404)
            let history = try await client.get("/sandboxes/history")
            #expect(history.array.contains { $0["sandboxID"] as? String == victim && $0["endReason"] as? String == "lost" })
            #expect(!FileManager.default.fileExists(atPath: server.dataDirectory + "/sandboxes/\(victim)"))
            #expect(try await client.delete("/sandboxes/\(survivor)").status == 204)
            #expect(hostProcesses(matching: server.dataDirectory + "/sandboxes/").isEmpty)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test func idleSandboxesAreKilledUnlessActive() async throws {
        let server = try await TestServer.start(name: "idle", environment: ["OMNIRUN_IDLE_TIMEOUT": "8"])
        do {
            let client = server.client()
            let idle = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let busy = try await createSandbox(client, ["template": "playground", "timeout": 0])
            _ = try await client.post("/sandboxes/\(busy)/commands", ["command": "true"])
            // Any call on a sandbox counts as activity; the idle one gets none.
            for _ in 0..<14 {
                #expect(try await client.get("/sandboxes/\(busy)").status == 200)
                try await Task.sleep(for: .seconds(1))
            }
            #expect(try await client.get("/sandboxes/\(idle)").status == 404)
            #expect(try await client.get("/sandboxes/\(busy)").status == 200)
            let history = try await client.get("/sandboxes/history")
            #expect(history.array.contains { $0["sandboxID"] as? String == idle && $0["endReason"] as? String == "idle" })
            _ = try await client.delete("/sandboxes/\(busy)")
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["OMNIRUN_TEST_POSTGRES_URL"] != nil))
    func serverRunsOnPostgreSQL() async throws {
        let url = ProcessInfo.processInfo.environment["OMNIRUN_TEST_POSTGRES_URL"] ?? ""
        // A database of its own, so its owner account is fresh.
        let name = "omnirun_e2e_\(getpid())"
        let server: TestServer
        do {
            try Self.psql(url, "DROP DATABASE IF EXISTS \(name)")
            try Self.psql(url, "CREATE DATABASE \(name)")
            server = try await TestServer.start(
                name: "postgres", environment: ["OMNIRUN_DATABASE": url.replacingOccurrences(of: "/postgres?", with: "/\(name)?")])
        }
        do {
            let client = server.client()
            let id = try await createSandbox(client)
            let run = try await client.post("/sandboxes/\(id)/commands", ["command": "echo on-postgres"])
            #expect(run.object["stdout"] as? String == "on-postgres\n")
            #expect(try await client.get("/sandboxes").array.count == 1)
            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
            #expect(try await client.get("/sandboxes/history").array.first?["endReason"] as? String == "killed")
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    static func psql(_ url: String, _ sql: String) throws {
        let socket = url.components(separatedBy: "host=").last ?? "/tmp"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        process.arguments = ["-h", socket, "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw HTTPTestError("psql failed: \(sql)") }
    }
}
