import Crypto
import Foundation
import Testing
import TestSupport

@Suite("Webhooks", .serialized, .timeLimit(.minutes(10)))
struct WebhookTests {
    /// A receiver on 127.0.0.1 gets every lifecycle event of a sandbox, signed; a flaky
    /// one is retried until it answers; one that is always down ends `failed`; the
    /// deliveries are recorded; loopback is refused unless configured.
    @Test func lifecycleEventsAreDeliveredSignedAndRetried() async throws {
        let log = TestRuntime.dataDirectory + "/webhooks-\(getpid()).jsonl"
        try? FileManager.default.removeItem(atPath: log)
        let receiver = try await HelperProcess.start(
            try Python.interpreter(importing: "json"), [Python.script("webhook-receiver.py"), "--log", log],
            logPath: log + ".stderr")
        defer { receiver.stop() }
        let base = "http://127.0.0.1:\(receiver.port)"
        let server = try await TestServer.start(
            name: "webhooks",
            environment: [
                "OMNIRUN_IDLE_TIMEOUT": "600", "OMNIRUN_WEBHOOK_ALLOW_LOOPBACK": "1", "OMNIRUN_WEBHOOK_RETRY_BASE_MS": "200",
            ])
        do {
            let client = server.client()
            let all = try await client.post(
                "/webhooks", ["url": base + "/all", "events": ["created", "paused", "resumed", "killed", "timeout", "idle_killed", "error"]])
            #expect(all.status == 201, "\(all.text)")
            let secret = all.object["secret"] as? String ?? ""
            #expect(secret.hasPrefix("whsec_"))
            let flaky = try await client.post("/webhooks", ["url": base + "/flaky-2/", "events": ["created"]])
            let down = try await client.post("/webhooks", ["url": base + "/down/", "events": ["killed"]])
            let flakyID = flaky.object["id"] as? String ?? ""
            let downID = down.object["id"] as? String ?? ""
            let listed = try await client.get("/webhooks").array
            #expect(listed.count == 3 && listed.allSatisfy { $0["secret"] == nil }, "\(listed)")
            // The secret is sealed at rest: neither the database nor its WAL holds it.
            for suffix in ["", "-wal"] {
                let file = (try? Data(contentsOf: URL(fileURLWithPath: server.dataDirectory + "/omnirun.db" + suffix))) ?? Data()
                #expect(file.range(of: Data(secret.utf8)) == nil, "the webhook secret is in omnirun.db\(suffix)")
            }
            #expect(listed.first?["events"] as? [String] == ["created", "paused", "resumed", "killed", "timeout", "idle_killed", "error"])

            let id = try await createSandbox(client, ["template": "playground", "timeout": 0, "metadata": ["suite": "hooks"]])
            #expect(try await client.post("/sandboxes/\(id)/pause").status == 200)
            #expect(try await client.post("/sandboxes/\(id)/resume").status == 200)
            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
            let short = try await createSandbox(client, ["template": "playground", "timeout": 2])

            let received = try await Self.wait(log: log, timeout: 60) { lines in
                let events = lines.filter { $0.path == "/all" }.map(\.event)
                return events.contains("timeout") && lines.filter { $0.path == "/flaky-2/" }.count >= 3
                    && lines.filter { $0.path == "/down/" }.count >= 6
            }
            let mine = received.filter { $0.path == "/all" && $0.sandboxID == id }
            #expect(mine.map(\.event) == ["created", "paused", "resumed", "killed"], "\(mine.map(\.event))")
            #expect(received.contains { $0.path == "/all" && $0.sandboxID == short && $0.event == "timeout" })
            for line in received where line.path == "/all" {
                let mac = HMAC<SHA256>.authenticationCode(for: Data(line.body.utf8), using: SymmetricKey(data: Data(secret.utf8)))
                let expected = "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
                #expect(line.signature == expected, "bad signature on \(line.event)")
                #expect(line.headerEvent == line.event)
            }
            let created = mine.first.flatMap { try? JSONSerialization.jsonObject(with: Data($0.body.utf8)) as? [String: Any] } ?? [:]
            #expect(created["templateID"] as? String == "playground" && (created["timestamp"] as? String)?.isEmpty == false)
            #expect((created["metadata"] as? [String: String])?["suite"] == "hooks")
            #expect(mine.first { $0.event == "paused" }?.body.contains("\"reason\":\"requested\"") == true)

            // Recorded: the flaky one delivered on its third attempt, the down one failed after six.
            let flakyDeliveries = try await client.get("/webhooks/\(flakyID)/deliveries").array
            #expect(flakyDeliveries.count == 2, "\(flakyDeliveries)")
            let delivered = flakyDeliveries.first { $0["sandboxID"] as? String == id }
            #expect(delivered?["status"] as? String == "delivered" && delivered?["attempts"] as? Int == 3, "\(flakyDeliveries)")
            try await Task.sleep(for: .seconds(1))
            let failed = try await client.get("/webhooks/\(downID)/deliveries").array.first
            #expect(failed?["status"] as? String == "failed" && failed?["attempts"] as? Int == 6, "\(String(describing: failed))")
            #expect(failed?["lastStatus"] as? Int == 503)

            // Bad input, another account, delete.
            #expect(try await client.post("/webhooks", ["url": "ftp://x", "events": ["created"]]).status == 400)
            #expect(try await client.post("/webhooks", ["url": base, "events": ["exploded"]]).status == 400)
            #expect(try await client.post("/webhooks", ["url": base, "events": []]).status == 400)
            let other = server.client(key: try server.createKey(email: "hooks-other@example.com"))
            #expect(try await other.delete("/webhooks/\(flakyID)").status == 404)
            #expect(try await other.get("/webhooks").array.isEmpty)
            #expect(try await client.delete("/webhooks/\(flakyID)").status == 204)
            #expect(try await client.get("/webhooks").array.count == 2)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()

        // Without the setting, loopback and link-local receivers are refused at once.
        let strict = try await TestServer.start(name: "webhooks-strict")
        let client = strict.client()
        for url in ["http://127.0.0.1:9/x", "http://localhost/x", "http://[::1]/x", "http://169.254.169.254/latest"] {
            let refused = try await client.post("/webhooks", ["url": url, "events": ["created"]])
            #expect(refused.status == 400, "\(url): \(refused.text)")
        }
        #expect(try await client.post("/webhooks", ["url": "https://hooks.example.com/x", "events": ["created"]]).status == 201)
        await strict.shutdown()
    }

    struct Received {
        var path: String
        var body: String
        var signature: String?
        var headerEvent: String?
        var event: String
        var sandboxID: String
    }

    static func wait(log: String, timeout: TimeInterval, until: ([Received]) -> Bool) async throws -> [Received] {
        let deadline = Date().addingTimeInterval(timeout)
        var lines: [Received] = []
        while Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            lines = text.split(separator: "\n").compactMap { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    let body = object["body"] as? String, let headers = object["headers"] as? [String: String],
                    let payload = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
                else { return nil }
                return Received(
                    path: object["path"] as? String ?? "", body: body, signature: headers["x-omnirun-signature"],
                    headerEvent: headers["x-omnirun-event"], event: payload["event"] as? String ?? "",
                    sandboxID: payload["sandboxID"] as? String ?? "")
            }
            if until(lines) { return lines }
            try await Task.sleep(for: .milliseconds(200))
        }
        return lines
    }
}
