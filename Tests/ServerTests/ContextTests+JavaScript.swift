import Foundation
import Testing
import TestSupport

/// JavaScript contexts: the javascript template's kernel (one Node.js process per context).
extension ContextTests {
    @Test func javascriptContextsKeepStateAwaitAndSurviveAnInterrupt() async throws {
        let (_, client) = try await SharedServer.client("contexts-js")
        let id = try await createSandbox(client, ["template": "javascript", "timeout": 600])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let base = "/sandboxes/\(id)/contexts"
        _ = try await client.post("/sandboxes/\(id)/commands", ["command": "mkdir -p /tmp/work"])

        let created = try await longCall(client, "POST", base, ["language": "javascript", "cwd": "/tmp/work"])
        #expect(created.status == 200, "\(created.text)")
        #expect(created.object["language"] as? String == "javascript")
        let context = created.object["id"] as? String ?? ""

        let set = try await execute(client, base, context, "var x = 41; const label = 'set'; console.log(label, x)")
        #expect((set.object["logs"] as? [String: Any])?["stdout"] as? String == "set 41\n", "\(set.text)")
        #expect((set.object["results"] as? [Any])?.isEmpty == true, "\(set.text)")
        #expect(texts(try await execute(client, base, context, "x + 1")) == ["42"])
        #expect(texts(try await execute(client, base, context, "label")) == ["'set'"], "const persists")
        #expect(texts(try await execute(client, base, context, "process.cwd()")) == ["'/tmp/work'"])
        let required = try await execute(client, base, context, "const path = require('path'); path.join('a', 'b')")
        #expect(texts(required) == ["'a/b'"], "\(required.text)")
        // A promise is awaited, and so is `await` at the top level.
        let awaited = try await execute(client, base, context, "await new Promise((r) => setTimeout(() => r(x * 2), 50))")
        #expect(texts(awaited) == ["82"], "\(awaited.text)")
        let failed = try await execute(client, base, context, "notDefined + 1")
        #expect((failed.object["error"] as? String)?.hasPrefix("ReferenceError") == true, "\(failed.text)")

        // Past its timeout a busy cell is interrupted; the context keeps what it had.
        let busy = try await execute(client, base, context, "while (true) {}", timeout: 5)
        #expect(busy.object["error"] != nil || ((busy.object["logs"] as? [String: Any])?["stderr"] as? String)?.contains("timed out") == true,
            "\(busy.text)")
        #expect(texts(try await execute(client, base, context, "x + 1")) == ["42"])

        // A language the server does not know is its 400; one this template lacks, the guest's.
        let unknown = try await longCall(client, "POST", base, ["language": "ruby"])
        #expect(unknown.status == 400 && (unknown.object["message"] as? String)?.contains("python, javascript") == true, "\(unknown.text)")
        let playground = try await createSandbox(client, ["template": "playground", "timeout": 300])
        defer { Task { _ = try? await client.delete("/sandboxes/\(playground)") } }
        let missing = try await longCall(client, "POST", "/sandboxes/\(playground)/contexts", ["language": "javascript"])
        #expect(missing.status == 400 && (missing.object["message"] as? String)?.contains("not supported in this sandbox") == true,
            "\(missing.text)")
    }
}
