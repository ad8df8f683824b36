import Foundation
import Testing
import TestSupport

/// A server logging at debug level, so that "no value in any log" means something.
enum VaultHarness {
    static let server = Task<TestServer, any Error> {
        try await TestServer.start(name: "vault", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"], logLevel: "debug")
    }

    static func client(_ label: String) async throws -> (TestServer, HTTPTestClient) {
        let server = try await server.value
        let key = try server.createKey(email: "\(label)-\(UUID().uuidString.prefix(8).lowercased())@vault.test")
        return (server, server.client(key: key))
    }
}

@Suite("Vault", .timeLimit(.minutes(10)))
struct VaultTests {
    @Test func credentialsAreStoredListedAndRemovedNeverShown() async throws {
        let (server, client) = try await VaultHarness.client("crud")
        let first = try await client.post("/vault/init")
        #expect(first.status == 200)
        #expect(try await client.post("/vault/init").object["createdAt"] as? String == first.object["createdAt"] as? String)

        let secret = "sk-crud-\(UUID().uuidString)"
        let created = try await client.post("/vault/credentials", ["key": "OPENAI_API_KEY", "value": secret])
        #expect(created.status == 201, "\(created.text)")
        #expect(created.object["key"] as? String == "OPENAI_API_KEY")
        #expect(!created.text.contains(secret))
        let replaced = try await client.post("/vault/credentials", ["key": "OPENAI_API_KEY", "value": secret + "-2"])
        #expect(replaced.status == 200)
        _ = try await client.post("/vault/credentials", ["key": "_OTHER_1", "value": ""])
        let list = try await client.get("/vault/credentials")
        let listed = list.object["credentials"] as? [[String: Any]] ?? []
        #expect(listed.compactMap { $0["key"] as? String } == ["OPENAI_API_KEY", "_OTHER_1"])
        #expect(list.object["keys"] as? [String] == ["OPENAI_API_KEY", "_OTHER_1"])
        #expect(listed.allSatisfy { $0["createdAt"] != nil && $0["updatedAt"] != nil && $0["value"] == nil })
        #expect(!list.text.contains(secret))

        // Keys are environment variable names.
        for bad in ["1ABC", "A-B", "A B", "", "Ä", String(repeating: "A", count: 129)] {
            let reply = try await client.post("/vault/credentials", ["key": bad, "value": "x"])
            #expect(reply.status == 400, "\(bad): \(reply.text)")
            #expect(reply.object["error"] as? String == "invalid_argument")
        }
        #expect(try await client.post("/vault/credentials", ["key": "NO_VALUE"]).status == 400)
        #expect(try await client.post("/vault/credentials", ["key": "NUMBER", "value": 5]).status == 400)
        let oversize = try await client.post("/vault/credentials", ["key": "BIG", "value": String(repeating: "v", count: (64 << 10) + 1)])
        #expect(oversize.status == 413)
        #expect(oversize.object["error"] as? String == "payload_too_large")
        #expect(try await client.post("/vault/credentials", ["key": "HUGE", "value": String(repeating: "v", count: 2 << 20)]).status == 413)

        // Another account never sees or touches this vault.
        let (_, stranger) = try await VaultHarness.client("stranger")
        #expect(try await stranger.get("/vault/credentials").object["keys"] as? [String] == [])
        #expect(try await stranger.delete("/vault/credentials/OPENAI_API_KEY").status == 404)
        #expect((try await client.get("/vault/credentials").object["keys"] as? [String])?.count == 2)

        #expect(try await client.delete("/vault/credentials/OPENAI_API_KEY").status == 204)
        #expect(try await client.delete("/vault/credentials/OPENAI_API_KEY").status == 404)
        #expect(try await client.get("/vault/credentials").object["keys"] as? [String] == ["_OTHER_1"])
        #expect(!server.fullLog().contains(secret))
        // No key, no vault.
        #expect(try await HTTPTestClient(baseURL: server.baseURL, apiKey: nil).get("/vault/credentials").status == 401)
    }

    @Test func vaultInjectWritesTheEnvFileAndEveryCommandSeesIt() async throws {
        let (server, client) = try await VaultHarness.client("inject")
        // A value that needs careful quoting: quotes, $, backticks, backslashes, a newline.
        let secret = "it's \"q\" $HOME `id` \\n \(UUID().uuidString)\nline2"
        _ = try await client.post("/vault/credentials", ["key": "SECRET_TOKEN", "value": secret])
        _ = try await client.post("/vault/credentials", ["key": "PLAIN", "value": "plain-\(UUID().uuidString)"])
        let id = try await createSandbox(client, ["template": "playground", "vaultInject": true, "timeout": 300])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let run = { (command: String, user: String?) async throws -> [String: Any] in
            var body: [String: Any] = ["command": command]
            if let user { body["user"] = user }
            return try await client.post("/sandboxes/\(id)/commands", body).object
        }
        let mode = try await run("stat -c '%a %U' /tmp/.omnirun-env", nil)
        #expect(mode["stdout"] as? String == "600 user\n")
        #expect(try await run("printenv SECRET_TOKEN", nil)["stdout"] as? String == secret + "\n")
        #expect(try await run("printenv SECRET_TOKEN", "root")["stdout"] as? String == secret + "\n")
        // The file is shell-quoted export lines: a clean shell that sources it gets the same value.
        let sourced = try await run("env -i /bin/bash -c '. /tmp/.omnirun-env; printf %s \"$SECRET_TOKEN\"'", nil)
        #expect(sourced["stdout"] as? String == secret, "\(sourced)")
        #expect((try await run("grep -c '^export ' /tmp/.omnirun-env", nil)["stdout"] as? String) == "2\n")
        let background = try await client.post(
            "/sandboxes/\(id)/commands", ["command": "printf %s \"$PLAIN\" > /tmp/bg.txt", "background": true])
        #expect(background.status == 200)
        try await Task.sleep(for: .seconds(1))
        #expect((try await client.get("/sandboxes/\(id)/files?path=%2Ftmp%2Fbg.txt").object["content"] as? String)?.hasPrefix("plain-") == true)

        // Values come after the restore: a sandbox without vaultInject has neither file nor variables.
        let plain = try await createSandbox(client, ["template": "playground", "timeout": 300])
        defer { Task { _ = try? await client.delete("/sandboxes/\(plain)") } }
        let clean = try await client.post(
            "/sandboxes/\(plain)/commands", ["command": "test -e /tmp/.omnirun-env; echo $? ${SECRET_TOKEN:-unset}"])
        #expect(clean.object["stdout"] as? String == "1 unset\n")

        // The API never shows the value, and no log does either.
        let info = try await client.get("/sandboxes/\(id)")
        #expect(!info.text.contains("SECRET_TOKEN"))
        let log = server.fullLog()
        #expect(!log.contains(secret))
        #expect(!log.contains(secret.split(separator: "\n")[0]))
        #expect(log.contains("sandbox created"), "the log is written at debug level")
    }
}

@Suite("Vault sandboxes and idleness", .timeLimit(.minutes(10)))
struct VaultIdleTests {
    @Test func vaultSandboxesAreExemptFromIdleKill() async throws {
        let server = try await TestServer.start(name: "vidle", environment: ["OMNIRUN_IDLE_TIMEOUT": "6"])
        do {
            let client = server.client()
            _ = try await client.post("/vault/credentials", ["key": "K", "value": "v"])
            let vault = try await createSandbox(client, ["template": "playground", "vaultInject": true, "timeout": 0])
            let plain = try await createSandbox(client, ["template": "playground", "timeout": 0])
            try await Task.sleep(for: .seconds(10))
            let sandboxes = try await client.get("/sandboxes").array.compactMap { $0["sandboxID"] as? String }
            #expect(sandboxes.contains(vault))
            #expect(!sandboxes.contains(plain))
            let history = try await client.get("/sandboxes/history")
            #expect(history.array.contains { $0["sandboxID"] as? String == plain && $0["endReason"] as? String == "idle" })
            #expect(try await client.delete("/sandboxes/\(vault)").status == 204)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
