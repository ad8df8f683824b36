import Foundation
import Testing
import TestSupport

/// What one account may keep on a node's disk besides running sandboxes, on real servers:
/// paused sandboxes (a limit, a retention, their disk shown) and template builds waiting
/// with their contexts (a quota of builds and bytes). Small settings keep the tests short.
@Suite("Per-account quotas", .serialized, .timeLimit(.minutes(20)))
struct QuotaTests {
    static let retention = 40

    @Test func pausedSandboxesHaveALimitARetentionAndShowTheirDisk() async throws {
        let log = TestRuntime.dataDirectory + "/quota-hooks-\(getpid()).jsonl"
        try? FileManager.default.removeItem(atPath: log)
        let receiver = try await HelperProcess.start(
            try Python.interpreter(importing: "json"), [Python.script("webhook-receiver.py"), "--log", log], logPath: log + ".stderr")
        defer { receiver.stop() }
        let server = try await TestServer.start(
            name: "paused-quota",
            environment: [
                "OMNIRUN_IDLE_TIMEOUT": "600", "OMNIRUN_PAUSED_LIMIT": "1", "OMNIRUN_PAUSED_RETENTION": "\(Self.retention)",
                "OMNIRUN_WEBHOOK_ALLOW_LOOPBACK": "1", "OMNIRUN_CONCURRENT_LIMIT": "3",
            ])
        do {
            let client = server.client()
            let hook = try await client.post(
                "/webhooks", ["url": "http://127.0.0.1:\(receiver.port)/q", "events": ["paused", "timeout", "killed"]])
            #expect(hook.status == 201, "\(hook.text)")
            let first = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let second = try await createSandbox(client, ["template": "playground", "timeout": 0])

            #expect(try await client.post("/sandboxes/\(first)/pause").object["status"] as? String == "paused")
            // Its disk use, as the host allocates it, and when it will be deleted.
            let info = try await client.get("/sandboxes/\(first)").object
            let bytes = info["pausedDiskBytes"] as? Int ?? 0
            let onDisk = AttackFootprint.diskKiB(server.dataDirectory + "/sandboxes/\(first)") * 1024
            #expect(bytes > 1 << 20 && abs(bytes - onDisk) <= max(onDisk / 20, 1 << 20), "reported \(bytes), du \(onDisk)")
            let listed = try await client.get("/sandboxes?state=paused").array.first { $0["sandboxID"] as? String == first }
            #expect(listed?["pausedDiskBytes"] as? Int == bytes)
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let pausedAt = formatter.date(from: info["pausedAt"] as? String ?? "")
            let until = formatter.date(from: info["retainedUntil"] as? String ?? "")
            #expect(pausedAt != nil && until != nil && abs(until!.timeIntervalSince(pausedAt!) - Double(Self.retention)) < 0.01, "\(info)")

            // The account's limit is 1: a second pause is a 429 and leaves the sandbox running.
            let (refused, footprint) = try await AttackFootprint.measure(
                "pausing beyond the account's paused limit", server: server, outcome: "refused (429); an auto-pause ends instead"
            ) {
                try await client.post("/sandboxes/\(second)/pause")
            }
            #expect(refused.status == 429, "\(refused.text)")
            #expect((refused.object["message"] as? String)?.contains("paused sandbox limit") == true)
            #expect(try await client.post("/sandboxes/\(second)/commands", ["command": "echo still running"]).object["stdout"] as? String
                == "still running\n")
            #expect(footprint.diskKiB.after <= footprint.diskKiB.before + 1024, "a refused pause saved nothing: \(footprint.diskKiB)")

            // An auto-pause at the limit ends the sandbox instead (a `timeout` event, not `paused`).
            let third = try await createSandbox(client, ["template": "playground", "timeout": 3, "autoPause": true])
            var state = "running"
            for _ in 0..<60 where state == "running" {
                try await Task.sleep(for: .milliseconds(500))
                state = try await client.get("/sandboxes/\(third)").object["state"] as? String ?? "gone"
            }
            #expect(state == "gone", "the auto-paused sandbox should have ended, is \(state)")
            #expect(try await client.get("/sandboxes/\(first)").object["state"] as? String == "paused", "the retention ran out too soon")
            let history = try await client.get("/sandboxes/history").array
            #expect(history.first { $0["sandboxID"] as? String == third }?["endReason"] as? String == "timeout", "\(history)")

            // Past the retention the paused sandbox is deleted: folder, record and a `timeout` event (reason retention).
            let (_, retention) = try await AttackFootprint.measure(
                "a paused sandbox left past its retention", server: server, outcome: "deleted, its disk freed"
            ) {
                for _ in 0..<(Self.retention * 3) {
                    if try await client.get("/sandboxes/\(first)").status == 404 { break }
                    try await Task.sleep(for: .seconds(1))
                }
            }
            #expect(try await client.get("/sandboxes/\(first)").status == 404)
            #expect(!FileManager.default.fileExists(atPath: server.dataDirectory + "/sandboxes/\(first)"))
            #expect(retention.diskKiB.after < retention.diskKiB.before, "\(retention.diskKiB)")
            let ended = try await client.get("/sandboxes/history").array.first { $0["sandboxID"] as? String == first }
            #expect(ended?["endReason"] as? String == "retention", "\(String(describing: ended))")
            let received = try await WebhookTests.wait(log: log, timeout: 30) { lines in
                lines.contains { $0.sandboxID == first && $0.event == "timeout" }
            }
            let events = received.map { "\($0.sandboxID):\($0.event)" }
            #expect(received.contains { $0.sandboxID == first && $0.event == "timeout" && $0.body.contains("\"reason\":\"retention\"") }, "\(events)")
            #expect(received.contains { $0.sandboxID == third && $0.event == "timeout" }, "\(events)")
            #expect(!received.contains { $0.sandboxID == third && $0.event == "paused" }, "\(events)")

            // The place is free again.
            #expect(try await client.post("/sandboxes/\(second)/pause").status == 200)
            #expect(try await client.delete("/sandboxes/\(second)").status == 204)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    static func badBuild(_ client: HTTPTestClient) async throws -> HTTPTestClient.Reply {
        try await client.multipart("/templates", fields: [("dockerfile", "FROM nowhere:1\n"), ("settings", "{\"name\": \"bad-one\"}")])
    }

    static func uploads(_ server: TestServer) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: server.dataDirectory + "/templates/uploads")) ?? []
    }

    /// One build and 1 MiB of contexts per account: an upload in flight or a build waiting
    /// holds the place; others of the account get 429 before their bytes are stored; other
    /// accounts are not affected; the place comes back when the upload fails or the build
    /// ends. The built template's name is in no open answer (`/status`, `/metrics`) nor in
    /// another account's errors.
    @Test func buildsWaitingWithTheirContextsHaveAQuota() async throws {
        let server = try await TestServer.start(
            name: "build-quota",
            environment: ["OMNIRUN_IDLE_TIMEOUT": "600", "OMNIRUN_BUILD_QUEUE_LIMIT": "1", "OMNIRUN_BUILD_QUEUE_BYTES": "1048576"])
        do {
            let alice = server.client(key: try server.createKey(email: "alice-builds@test.local"))
            let bob = server.client(key: try server.createKey(email: "bob-builds@test.local"))

            // A context larger than what the quota leaves: 429, and nothing kept.
            let big = try await alice.multipart(
                "/templates", fields: [("dockerfile", "FROM playground\nRUN true\n"), ("settings", "{\"name\": \"too-big\"}")],
                files: [("context", "context.tar", Data(repeating: 7, count: 2 << 20))])
            #expect(big.status == 429, "\(big.text)")
            #expect((big.object["message"] as? String)?.contains("build quota") == true, "\(big.text)")
            #expect(Self.uploads(server).isEmpty, "\(Self.uploads(server))")

            // An upload in flight holds Alice's one place.
            let boundary = "held-\(UUID().uuidString)"
            let head = """
                POST /templates HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: \(alice.apiKey ?? "")\r\n\
                Content-Type: multipart/form-data; boundary=\(boundary)\r\nContent-Length: 600000\r\n\r\n\
                --\(boundary)\r\nContent-Disposition: form-data; name="context"; filename="c.tar"\r\n\r\n
                """
            try await RawHTTPClient.with(port: server.port) { connection in
                try await connection.send(head)
                try await connection.send([UInt8](repeating: 1, count: 100_000))
                var held = false
                for _ in 0..<50 where !held {
                    try await Task.sleep(for: .milliseconds(100))
                    held = Self.uploads(server).count == 1
                }
                #expect(held, "the held upload's context file")
                // A flood of Alice's uploads meanwhile: each refused before its body is stored.
                let (statuses, footprint) = try await AttackFootprint.measure(
                    "20 parallel template uploads (512 KiB contexts) past the build quota", server: server,
                    outcome: "refused (429) before storing; disk unchanged"
                ) {
                    try await withThrowingTaskGroup(of: Int.self) { group in
                        for index in 0..<20 {
                            group.addTask {
                                try await alice.multipart(
                                    "/templates",
                                    fields: [("dockerfile", "FROM playground\nRUN true\n"), ("settings", "{\"name\": \"flood-\(index)\"}")],
                                    files: [("context", "c.tar", Data(repeating: 9, count: 512 << 10))]
                                ).status
                            }
                        }
                        var all: [Int] = []
                        for try await status in group { all.append(status) }
                        return all
                    }
                }
                #expect(statuses.allSatisfy { $0 == 429 }, "\(statuses)")
                #expect(Self.uploads(server).count == 1, "\(Self.uploads(server))")
                #expect(footprint.diskKiB.after <= footprint.diskKiB.before + 256, "\(footprint.diskKiB)")
                #expect(footprint.descriptors.after <= footprint.descriptors.before + 8, "\(footprint.descriptors)")
                // Bob is not affected (his bad Dockerfile is read and refused for what it is).
                #expect(try await Self.badBuild(bob).status == 400)
            }
            // The client went away: the place and the file are freed.
            var freed = false
            for _ in 0..<50 where !freed {
                freed = try await Self.badBuild(alice).status == 400
                if !freed { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(freed, "the aborted upload still holds Alice's place")
            #expect(Self.uploads(server).isEmpty, "\(Self.uploads(server))")

            // A real build holds the place until it ends.
            let name = "quota-\(UUID().uuidString.prefix(6).lowercased())"
            let started = try await alice.multipart(
                "/templates", fields: [("dockerfile", "FROM playground\nRUN echo built > /home/user/built.txt\n"), ("settings", "{\"name\": \"\(name)\"}")])
            #expect(started.status == 202, "\(started.text)")
            let buildID = started.object["buildID"] as? String ?? ""
            let queued = try await Self.badBuild(alice)
            #expect(queued.status == 429 && (queued.object["message"] as? String)?.contains("template build quota") == true, "\(queued.text)")
            #expect(try await Self.badBuild(bob).status == 400)
            var build: [String: Any] = [:]
            for _ in 0..<900 {
                build = try await alice.get("/templates/\(name)/builds/\(buildID)").object
                if build["status"] as? String != "building" { break }
                try await Task.sleep(for: .seconds(1))
            }
            #expect(build["status"] as? String == "ready", "\(build)")
            #expect(try await Self.badBuild(alice).status == 400, "the ended build still holds the place")

            // The name stays Alice's business: not in /status, /metrics, nor Bob's errors.
            let status = try await HTTPTestClient(baseURL: server.baseURL, apiKey: nil).get("/status")
            #expect(status.status == 200 && (status.object["templates"] as? [String])?.contains("playground") == true, "\(status.text)")
            #expect(!status.text.contains(name), "/status names a tenant's template: \(status.text)")
            let metrics = try await HTTPTestClient(baseURL: server.baseURL, apiKey: nil).get("/metrics")
            #expect(metrics.status == 200 && !metrics.text.contains(name), "/metrics names a tenant's template")
            let unknown = try await bob.post("/sandboxes", ["template": "no-such-template"])
            #expect(unknown.status == 404 && !unknown.text.contains(name), "\(unknown.text)")
            #expect((unknown.object["message"] as? String)?.contains("playground") == true)
            #expect(try await bob.post("/sandboxes", ["template": name]).status == 404)
            #expect(try await alice.delete("/templates/\(name)").status == 204)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
