import Foundation
import Testing
import TestSupport

/// A sandbox's `envVars` on a real server: the sandbox sees them; the database and its
/// WAL never hold them (sealed like vault values), before and after a restart.
@Suite("Sandbox environment at rest", .serialized, .timeLimit(.minutes(10)))
struct SandboxEnvTests {
    @Test func envVarsAreSealedInTheStore() async throws {
        let server = try await TestServer.start(name: "env-at-rest", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
        do {
            let client = server.client()
            let secret = "pw-\(UUID().uuidString)"
            let id = try await createSandbox(
                client, ["template": "playground", "timeout": 0, "envVars": ["DB_PASSWORD": secret, "MODE": "test"]])
            let seen = try await client.post("/sandboxes/\(id)/commands", ["command": "echo \"$DB_PASSWORD $MODE\""])
            #expect(seen.object["stdout"] as? String == "\(secret) test\n", "\(seen.text)")
            func inDatabase() -> [String] {
                ["", "-wal"].filter { suffix in
                    let file = (try? Data(contentsOf: URL(fileURLWithPath: server.dataDirectory + "/omnirun.db" + suffix))) ?? Data()
                    return file.range(of: Data(secret.utf8)) != nil
                }
            }
            #expect(inDatabase().isEmpty, "the value is in omnirun.db\(inDatabase())")
            server.crash()
            try await server.restart()
            let again = try await client.post("/sandboxes/\(id)/commands", ["command": "echo \"$DB_PASSWORD\""])
            #expect(again.object["stdout"] as? String == "\(secret)\n", "\(again.text)")
            #expect(try await client.get("/sandboxes/\(id)").object["state"] as? String == "running")
            #expect(inDatabase().isEmpty, "the value is in omnirun.db\(inDatabase()) after the restart")
            #expect(!server.fullLog().contains(secret))
            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
