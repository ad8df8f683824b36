import Crypto
import Foundation
import Testing
import TestSupport

@testable import OmniRunServer
import OmniRunE2EE

/// One server for the public-client contract tests; each test uses its own account.
enum ContractHarness {
    static let server = Task<TestServer, any Error> {
        try await TestServer.start(name: "contract", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
    }

    static func client(_ label: String) async throws -> (TestServer, HTTPTestClient) {
        let server = try await server.value
        let key = try server.createKey(email: "\(label)-\(UUID().uuidString.prefix(8).lowercased())@contract.test")
        return (server, server.client(key: key))
    }
}

/// Calls the public clients make as they make them (method, path, body), and the answers
/// they read. Each test names the client file it replays.
@Suite("Public client contract", .timeLimit(.minutes(10)))
struct ClientContractTests {
    /// a14a-org/omnirun-claude-managed-agents-worker `scripts/spawn.sh` starts its worker with
    /// `POST /commands {command, background: true, cwd}` (no `timeout`) and polls
    /// `GET /commands/{pid}` until `running` is false: the worker must not die at 60 s.
    @Test func backgroundCommandWithoutTimeoutRunsUntilItExits() async throws {
        let (_, client) = try await ContractHarness.client("background")
        let id = try await createSandbox(client, ["template": "playground", "timeout": 600])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let started = try await client.post(
            "/sandboxes/\(id)/commands", ["command": "sleep 66; echo survived", "background": true, "cwd": "/tmp"])
        let pid = try #require(started.object["pid"] as? Int, "\(started.text)")
        // A background command with its own timeout still ends there.
        let bounded = try await client.post("/sandboxes/\(id)/commands", ["command": "sleep 300", "background": true, "timeout": 2])
        let boundedPid = try #require(bounded.object["pid"] as? Int, "\(bounded.text)")

        let deadline = Date().addingTimeInterval(180)
        var status: [String: Any] = [:]
        var boundedEnded: Date?
        let start = Date()
        while Date() < deadline {
            status = try await client.get("/sandboxes/\(id)/commands/\(pid)").object
            if boundedEnded == nil, try await client.get("/sandboxes/\(id)/commands/\(boundedPid)").object["running"] as? Bool == false {
                boundedEnded = Date()
            }
            if status["running"] as? Bool == false { break }
            try await Task.sleep(for: .seconds(3))
        }
        #expect(status["running"] as? Bool == false, "still running after 180 s: \(status)")
        #expect(status["exit_code"] as? Int == 0, "\(status)")
        #expect(status["stdout"] as? String == "survived\n", "\(status)")
        #expect(Date().timeIntervalSince(start) > 60)
        let ended = try #require(boundedEnded, "the command with timeout 2 was still running")
        #expect(ended.timeIntervalSince(start) < 60)
    }

    /// spawn.sh and its README create with `{templateID: "claude-agent", …}`: a synonym of
    /// `template`, an unknown name is the usual 404, never the default template.
    @Test func templateIDIsASynonymOfTemplate() async throws {
        let (_, client) = try await ContractHarness.client("templateid")
        // `RESOLUTION` sizes a desktop (DesktopScreenTests); elsewhere it is a variable like any other.
        let id = try await createSandbox(client, ["templateID": "playground", "timeout": 300, "envVars": ["RESOLUTION": "big"]])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        #expect(try await client.get("/sandboxes/\(id)").object["templateID"] as? String == "playground")
        let echoed = try await client.post("/sandboxes/\(id)/commands", ["command": "echo $RESOLUTION"])
        #expect(echoed.object["stdout"] as? String == "big\n", "\(echoed.text)")
        // The worker's concurrency check reads `.templateID // .template_id` from the list.
        #expect(try await client.get("/sandboxes").array.contains { $0["sandboxID"] as? String == id && $0["templateID"] as? String == "playground" })

        let unknown = try await client.post("/sandboxes", ["templateID": "claude-agent-nope", "timeout": 60])
        #expect(unknown.status == 404, "\(unknown.text)")
        #expect(unknown.object["error"] as? String == "not_found")
        let lower = try await client.post("/sandboxes", ["templateId": "no-such-template", "timeout": 60])
        #expect(lower.status == 404, "\(lower.text)")
        let both = try await client.post("/sandboxes", ["template": "playground", "templateID": "javascript"])
        #expect(both.status == 400, "\(both.text)")
        #expect((both.object["message"] as? String)?.contains("templateID") == true, "\(both.text)")
        #expect(try await client.get("/sandboxes").array.count == 1, "no sandbox was made by a refused create")
    }

    /// The public CLI's `desktop click|move <x> <y>` parses with `Number.parseFloat`
    /// (a14a-org/omnirun-cli src/cli.ts) and sends `{action, x, y}` as JSON numbers.
    @Test func desktopMouseTakesFractionalCoordinates() async throws {
        let (_, client) = try await ContractHarness.client("mouse")
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        // Out of range after rounding: the field's own message, not "malformed JSON body".
        let far = try await client.post("/sandboxes/\(id)/desktop/mouse", ["action": "move", "x": 20000.4, "y": 10.5])
        #expect(far.status == 400)
        #expect((far.object["message"] as? String)?.contains("x must be between 0 and 16384 (got 20000)") == true, "\(far.text)")
        let huge = try await client.post("/sandboxes/\(id)/desktop/mouse", ["action": "click", "x": 1e300, "y": 1])
        #expect(huge.status == 400 && (huge.object["message"] as? String)?.hasPrefix("x must be between") == true, "\(huge.text)")
        // In range, a fraction is admitted like a whole number: both reach the sandbox, which
        // (a playground has no display) answers the same for each.
        let whole = try await client.post("/sandboxes/\(id)/desktop/mouse", ["action": "move", "x": 12, "y": 7])
        let fraction = try await client.post("/sandboxes/\(id)/desktop/mouse", ["action": "move", "x": 12.4, "y": 6.6])
        #expect(fraction.status == whole.status, "\(fraction.text) vs \(whole.text)")
        #expect(!fraction.text.contains("malformed"), "\(fraction.text)")
        #expect(try await client.post("/sandboxes/\(id)/desktop/mouse", ["action": "move", "x": "12", "y": 7]).status == 400)
    }

    /// a14a-org/omnirun-examples `07-vault-injection/index.ts`: `POST /vault/init` and prints
    /// `vault_sandbox_id`; stores `{credentials: {K: V, …}}` at once; lists with
    /// `data.keys ?? data.credentials`; creates with `metadata: {vaultInject: "true"}` and
    /// sources `/tmp/.omnirun-env` in the sandbox.
    @Test func vaultShapesOfTheHostedExample() async throws {
        let (server, client) = try await ContractHarness.client("vault")
        let initialized = try await client.post("/vault/init")
        #expect(initialized.status == 200)
        #expect(initialized.object.keys.contains("vault_sandbox_id"), "\(initialized.text)")
        #expect(initialized.object["vault_sandbox_id"] is NSNull, "no sandbox holds the vault: \(initialized.text)")

        let secret = "wJalrXUtnFEMI/K7MDENG/\(UUID().uuidString)"
        let credentials = [
            "DATABASE_URL": "postgres://app:s3cret@db.internal:5432/myapp", "STRIPE_SECRET_KEY": "sk_test_example_key_12345",
            "AWS_SECRET_ACCESS_KEY": secret,
        ]
        let stored = try await client.post("/vault/credentials", ["credentials": credentials])
        #expect(stored.status == 201, "\(stored.text)")
        #expect(stored.object["keys"] as? [String] == credentials.keys.sorted())
        #expect(stored.object["created"] as? Int == 3)
        #expect(!stored.text.contains(secret))
        let again = try await client.post("/vault/credentials", ["credentials": ["DATABASE_URL": "postgres://other"]])
        #expect(again.status == 200 && again.object["updated"] as? Int == 1, "\(again.text)")
        // The single form still works beside it.
        #expect(try await client.post("/vault/credentials", ["key": "SINGLE", "value": "one"]).status == 201)

        let listed = try await client.get("/vault/credentials")
        #expect(listed.object["keys"] as? [String] == ["AWS_SECRET_ACCESS_KEY", "DATABASE_URL", "SINGLE", "STRIPE_SECRET_KEY"])
        let views = listed.object["credentials"] as? [[String: Any]] ?? []
        #expect(views.count == 4 && views.allSatisfy { $0["key"] is String && $0["updatedAt"] is String && $0["value"] == nil })
        #expect(!listed.text.contains(secret))

        // A bulk store is checked whole before anything is written.
        let bad = try await client.post("/vault/credentials", ["credentials": ["GOOD_ONE": "x", "1BAD": "y"]])
        #expect(bad.status == 400, "\(bad.text)")
        #expect(try await client.post("/vault/credentials", ["credentials": [String: String]()]).status == 400)
        #expect(try await client.post("/vault/credentials", ["credentials": ["A": "x"], "key": "B", "value": "y"]).status == 400)
        #expect(try await client.post("/vault/credentials", ["credentials": ["NUMBER": 5]]).status == 400)
        let many = Dictionary(uniqueKeysWithValues: (0..<65).map { ("K\($0)", "v") })
        #expect(try await client.post("/vault/credentials", ["credentials": many]).status == 400)
        #expect(try await client.get("/vault/credentials").object["keys"] as? [String] == ["AWS_SECRET_ACCESS_KEY", "DATABASE_URL", "SINGLE", "STRIPE_SECRET_KEY"])

        // `metadata.vaultInject: "true"` injects, as `vaultInject: true` does.
        let id = try await createSandbox(
            client, ["template": "playground", "timeout": 300, "metadata": ["source": "vault-injection-example", "vaultInject": "true"]])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let run = try await client.post(
            "/sandboxes/\(id)/commands", ["command": "sh -c '. /tmp/.omnirun-env && printf %s \"$AWS_SECRET_ACCESS_KEY\"'"])
        #expect(run.object["stdout"] as? String == secret, "\(run.text)")
        // An explicit `vaultInject: false` wins over the metadata.
        let plain = try await createSandbox(
            client, ["template": "playground", "timeout": 300, "vaultInject": false, "metadata": ["vaultInject": "true"]])
        defer { Task { _ = try? await client.delete("/sandboxes/\(plain)") } }
        let clean = try await client.post("/sandboxes/\(plain)/commands", ["command": "test -e /tmp/.omnirun-env; echo $?"])
        #expect(clean.object["stdout"] as? String == "1\n", "\(clean.text)")
        #expect(!server.fullLog().contains(secret))
    }

    /// a14a-org/omnirun-examples `06-llm-proxy/index.ts` reads `spend_used_cents` and
    /// `spend_cap_cents`; the SDK's `getUsage()` (omnirun-sdk src/llm.ts) the camelCase ones.
    @Test func llmUsageInBothSpellings() async throws {
        let (_, client) = try await ContractHarness.client("usage")
        let usage = try await client.get("/llm/v1/usage").object
        let cap = try #require(usage["spendCapCents"] as? Int, "\(usage)")
        #expect(usage["spend_cap_cents"] as? Int == cap)
        #expect(usage["spend_used_cents"] as? Double == usage["spendUsedCents"] as? Double)
        #expect(usage["spend_used_cents"] as? Double == 0)
        #expect(usage["remaining_cents"] as? Double == usage["remainingCents"] as? Double)
    }

    /// The public CLI's `sandbox history --limit --offset` prints `sandboxId`, `templateId`,
    /// `status`, `createdAt`, `stoppedAt`; its `sandbox info` falls back to a history entry's
    /// `cpuCount`, `memoryMB`, `timeoutSeconds` (a14a-org/omnirun-cli src/cli.ts). The SDK's
    /// `Sandbox.list()` reads one page and no `x-next-token` (omnirun-sdk src/sandbox.ts).
    @Test func historyAndListPagesAsTheClientsReadThem() async throws {
        let (_, client) = try await ContractHarness.client("history")
        var ids: [String] = []
        // Timeouts far past the test's length (creates wait their turn on a loaded machine).
        for timeout in [3600, 3700, 3800] {
            ids.append(try await createSandbox(client, ["template": "playground", "timeout": timeout]))
        }
        // The default page holds them all; a limit past 1000 is clamped, not refused.
        let all = try await client.get("/sandboxes")
        #expect(Set(all.array.compactMap { $0["sandboxID"] as? String }) == Set(ids))
        #expect(all.header("x-next-token") == nil)
        let clamped = try await client.get("/sandboxes?limit=5000")
        #expect(clamped.status == 200, "\(clamped.text)")
        #expect(clamped.array.count == 3)
        #expect(try await client.get("/sandboxes?limit=99999999999999999999999").status == 200)
        let paged = try await client.get("/sandboxes?limit=2")
        #expect(paged.array.count == 2 && paged.header("x-next-token") != nil)
        for bad in ["0", "-1", "abc", "1.5"] {
            #expect(try await client.get("/sandboxes?limit=\(bad)").status == 400, "limit=\(bad)")
        }

        for id in ids {
            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
            try await Task.sleep(for: .milliseconds(20))
        }
        let history = try await client.get("/sandboxes/history?limit=20&offset=0").array
        #expect(history.compactMap { $0["sandboxId"] as? String } == ids.reversed(), "newest first: \(history)")
        for item in history {
            #expect(item["sandboxId"] as? String == item["sandboxID"] as? String)
            #expect(item["templateId"] as? String == "playground")
            #expect(item["status"] as? String == "killed")
            #expect(item["createdAt"] as? String == item["startedAt"] as? String)
            #expect((item["stoppedAt"] as? String)?.isEmpty == false && item["stoppedAt"] as? String == item["endedAt"] as? String)
            #expect(item["cpuCount"] as? Int ?? 0 > 0 && item["memoryMB"] as? Int ?? 0 > 0)
        }
        #expect(history.compactMap { $0["timeoutSeconds"] as? Int } == [3800, 3700, 3600])
        let second = try await client.get("/sandboxes/history?limit=1&offset=1").array
        #expect(second.compactMap { $0["sandboxId"] as? String } == [ids[1]])
        #expect(try await client.get("/sandboxes/history?offset=3").array.isEmpty)
        #expect(try await client.get("/sandboxes/history?limit=5000").array.count == 3)
        for bad in ["-1", "x", "1000001"] {
            #expect(try await client.get("/sandboxes/history?offset=\(bad)").status == 400, "offset=\(bad)")
        }
    }

    /// The worker's spawn.sh downloads outputs by filtering listings with
    /// `.type? != "dir"`; the SDK reads `is_dir` (wire protocol §6).
    @Test func fileListingsSayDir() async throws {
        let (_, client) = try await ContractHarness.client("listing")
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        _ = try await client.post("/sandboxes/\(id)/files/mkdir", ["path": "/tmp/outputs/sub"])
        _ = try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/outputs/report.txt", "content": "done\n"])
        let listing = try await client.get("/sandboxes/\(id)/files/list?path=%2Ftmp%2Foutputs")
        let entries = Dictionary(uniqueKeysWithValues: listing.array.compactMap { entry in (entry["name"] as? String).map { ($0, entry) } })
        #expect(entries["sub"]?["type"] as? String == "dir" && entries["sub"]?["is_dir"] as? Bool == true, "\(listing.text)")
        #expect(entries["report.txt"]?["type"] as? String == "file" && entries["report.txt"]?["is_dir"] as? Bool == false)
        let info = try await client.get("/sandboxes/\(id)/files/info?path=%2Ftmp%2Foutputs%2Fsub")
        #expect(info.object["type"] as? String == "dir", "\(info.text)")
    }

    /// The SDK's e2ee sandbox sends `sbx.webhooks.create(url, events)` through its own
    /// HTTP client, which seals every POST body (omnirun-sdk src/sandbox.ts: `new
    /// Webhooks(client)`; src/client.ts seals once a `serverPublicKey` is set): the server
    /// opens it with the key of the caller's e2ee sandbox it was sealed for.
    @Test func webhooksFromAnE2EEClientAreOpened() async throws {
        let (_, client) = try await ContractHarness.client("webhook-e2ee")
        let clientKey = P256.KeyAgreement.PrivateKey()
        let publicKey = clientKey.publicKey.derRepresentation.base64EncodedString()
        let created = try await CreateGate.shared.run {
            try await client.post("/sandboxes", ["template": "playground", "timeout": 300, "e2ee": true, "clientPublicKey": publicKey])
        }
        #expect(created.status == 201, "\(created.text)")
        let id = try #require(created.object["sandboxID"] as? String)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let serverKey = try #require(created.object["serverPublicKey"] as? String)
        let channel = try E2EEChannel.derive(privateKey: clientKey, peer: try E2EEChannel.publicKey(serverKey))
        func sealed(_ object: Any, with channel: E2EEChannel) throws -> [String: Any] {
            // As the SDK seals: no aad.
            let envelope = try channel.seal(try JSONSerialization.data(withJSONObject: object))
            return ["_encrypted": ["alg": envelope.alg, "nonce": envelope.nonce, "ciphertext": envelope.ciphertext]]
        }
        // `paused` never fires here, and the host is never resolved at registration.
        let hook = ["url": "https://hooks.example.invalid/omnirun", "events": ["paused"]] as [String: Any]
        let body = try sealed(hook, with: channel)
        let reply = try await client.post("/webhooks", body)
        #expect(reply.status == 201, "\(reply.text)")
        // The answer comes back sealed for the same channel, bound to its request.
        #expect(Array(reply.object.keys) == ["_encrypted"], "\(reply.text)")
        let answer = try JSONDecoder().decode([String: E2EEChannel.Envelope].self, from: reply.body)["_encrypted"]
        let envelope = try #require(answer)
        #expect(envelope.aad == "response POST /webhooks")
        let opened = try JSONSerialization.jsonObject(with: try channel.open(envelope).plaintext) as? [String: Any] ?? [:]
        let webhookID = try #require(opened["id"] as? String, "\(opened)")
        #expect(opened["url"] as? String == "https://hooks.example.invalid/omnirun")
        #expect(try await client.get("/webhooks").array.compactMap { $0["id"] as? String } == [webhookID])

        // The same envelope again is a replay; one sealed under another key opens for none.
        let replay = try await client.post("/webhooks", body)
        #expect(replay.status == 400 && (replay.object["message"] as? String)?.contains("replayed") == true, "\(replay.text)")
        let stranger = try E2EEChannel.derive(
            privateKey: P256.KeyAgreement.PrivateKey(), peer: try E2EEChannel.publicKey(serverKey))
        let foreign = try await client.post("/webhooks", try sealed(hook, with: stranger))
        #expect(foreign.status == 400 && (foreign.object["message"] as? String)?.contains("does not open") == true, "\(foreign.text)")
        // Another account's sandbox key is never tried for this caller.
        let (_, other) = try await ContractHarness.client("webhook-other")
        let otherAccount = try await other.post("/webhooks", try sealed(hook, with: channel))
        #expect(otherAccount.status == 400 && (otherAccount.object["message"] as? String)?.contains("none of your") == true, "\(otherAccount.text)")
        // Plaintext clients are served as before.
        let plain = try await client.post("/webhooks", hook)
        #expect(plain.status == 201 && plain.object["id"] is String, "\(plain.text)")
        #expect(try await client.get("/webhooks").array.count == 2)
        for registered in try await client.get("/webhooks").array.compactMap({ $0["id"] as? String }) {
            #expect(try await client.delete("/webhooks/\(registered)").status == 204)
        }
    }

    /// `/health` is open and answers while the process serves; `/health/ready` says
    /// whether the store and the sandbox runtime answer.
    @Test func healthAndReadiness() async throws {
        let server = try await ContractHarness.server.value
        let open = HTTPTestClient(baseURL: server.baseURL, apiKey: nil)
        let live = try await open.get("/health")
        #expect(live.status == 200, "\(live.text)")
        #expect(live.object["status"] as? String == "ok")
        let ready = try await open.get("/health/ready")
        #expect(ready.status == 200, "\(ready.text)")
        #expect(ready.object["ready"] as? Bool == true)
        #expect((ready.object["store"] as? [String: Any])?["ok"] as? Bool == true)
        #expect((ready.object["runtime"] as? [String: Any])?["ok"] as? Bool == true)
        #expect(ready.object["running_sandboxes"] is Int)
        #expect(ready.object["error"] == nil)
        // A key is neither needed nor harmful.
        #expect(try await server.client().get("/health/ready").status == 200)
    }
}

/// The readiness checks' deadline: a part that fails or hangs is reported, and a hang does
/// not hold the answer up.
@Suite("Readiness checks")
struct ReadinessCheckTests {
    @Test func aFailingPartIsReportedWithoutItsError() async {
        struct StoreDown: Error {}
        let (check, value) = await HealthController.check(timeout: .seconds(5)) { () async throws -> Int in throw StoreDown() }
        #expect(!check.ok && check.error == "failed" && value == nil)
    }

    @Test func aHangingPartAnswersAtTheDeadline() async {
        let clock = ContinuousClock()
        let start = clock.now
        let (check, value) = await HealthController.check(timeout: .milliseconds(300)) { () async throws -> Int in
            // A wait that ignores cancellation, as a store stuck in a call would (it holds no thread).
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().asyncAfter(deadline: .now() + 60) { done.resume() }
            }
            return 1
        }
        let elapsed = clock.now - start
        #expect(!check.ok && check.error?.hasPrefix("did not answer within") == true && value == nil, "\(check)")
        // Well under the hang's 60 s; loose, because the parallel suite can keep the
        // cooperative pool busy for seconds on this machine's two cores.
        #expect(elapsed < .seconds(30), "the answer waited \(elapsed)")
    }

    @Test func aHealthyPartGivesItsValue() async {
        let (check, value) = await HealthController.check(timeout: .seconds(5)) { () async throws -> Int in 7 }
        #expect(check.ok && check.error == nil && value == 7)
    }
}
