import Foundation
import Testing

/// What else learns of a sandbox's life: its exposures stop with it, and its owner's
/// webhooks get an event for each step.
@Suite("Control plane: exposures and webhooks")
struct ExposureWebhookTests {
    @Test func exposuresStopWhenTheirSandboxEnds() async throws {
        try await ControlPlane.run { plane in
            let sandbox = try await plane.createSandbox()
            let id = sandbox.sandboxID
            let server = try await plane.call(
                .post, "/sandboxes/\(id)/commands", json: #"{"command": "python3 -m http.server 8000", "background": true}"#)
            #expect(server.status == 200, "\(server)")

            let ready = try await plane.call(.post, "/sandboxes/\(id)/exposures", json: #"{"port": 8000}"#)
            #expect(ready.status == 201, "\(ready)")
            let exposure = try ready.decode(WireExposure.self)
            #expect(exposure.status == "ready" && exposure.sandboxId == id && exposure.port == 8000)
            #expect(exposure.url.contains(":8081"))
            let quiet = try await plane.call(.post, "/sandboxes/\(id)/exposures", json: #"{"port": 9000}"#)
            #expect(try quiet.decode(WireExposure.self).status == "pending", "nothing listens on 9000")
            #expect(try await plane.call(.get, "/sandboxes/\(id)/exposures").decode([WireExposure].self).count == 2)

            #expect(try await plane.call(.delete, "/sandboxes/\(id)").status == 204)
            let after = try await plane.call(.get, "/sandboxes/\(id)/exposures/\(exposure.id)")
            #expect(after.status == 200, "an ended sandbox's exposures stay readable")
            let stopped = try after.decode(WireExposure.self)
            #expect(stopped.status == "sandbox_stopped" && stopped.sandboxStoppedAt != nil)
            let all = try await plane.call(.get, "/sandboxes/\(id)/exposures").decode([WireExposure].self)
            #expect(all.map(\.status) == ["sandbox_stopped", "sandbox_stopped"])
            #expect(try await plane.call(.post, "/sandboxes/\(id)/exposures", json: #"{"port": 8000}"#).status == 404)
        }
    }

    @Test func webhooksAreQueuedForEachStepOfASandboxsLife() async throws {
        try await ControlPlane.run { plane in
            // Port 9 on loopback: nobody answers, so deliveries stay queued for their retry.
            let created = try await plane.call(
                .post, "/webhooks", json: #"{"url": "http://127.0.0.1:9/hook", "events": ["created", "paused", "resumed", "killed", "error"]}"#)
            #expect(created.status == 201, "\(created)")
            let webhook = try created.decode(WireWebhook.self)
            #expect(!webhook.secret.isEmpty)

            let sandbox = try await plane.createSandbox()
            #expect(try await plane.call(.post, "/sandboxes/\(sandbox.sandboxID)/pause").status == 200)
            #expect(try await plane.call(.post, "/sandboxes/\(sandbox.sandboxID)/resume").status == 200)
            #expect(try await plane.call(.delete, "/sandboxes/\(sandbox.sandboxID)").status == 204)
            let crashed = try await plane.createSandbox()
            await plane.driver.machine(named: crashed.sandboxID)?.crash()

            func deliveries() async throws -> [WireDelivery] {
                try await plane.call(.get, "/webhooks/\(webhook.id)/deliveries").decode()
            }
            let all = try await eventually { try await deliveries().count == 6 }
            let events = try await deliveries()
            #expect(all, "six events, not \(events.map(\.event))")
            let first = events.filter { $0.sandboxID == sandbox.sandboxID }.map(\.event)
            #expect(Set(first) == ["created", "paused", "resumed", "killed"] && first.count == 4)
            #expect(Set(events.filter { $0.sandboxID == crashed.sandboxID }.map(\.event)) == ["created", "error"])
            #expect(events.allSatisfy { ["pending", "failed"].contains($0.status) }, "\(events.map(\.status))")

            // A webhook of another account hears nothing of these.
            let other = try await plane.createAccount("listener@example.com")
            let theirs = try await plane.call(
                .post, "/webhooks", json: #"{"url": "http://127.0.0.1:9/other", "events": ["created"]}"#, key: other
            ).decode(WireWebhook.self)
            _ = try await plane.createSandbox()
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await plane.call(.get, "/webhooks/\(theirs.id)/deliveries", key: other).decode([WireDelivery].self).isEmpty)
        }
    }

    @Test func aWebhookToAPrivateAddressIsRefusedUnlessAllowed() async throws {
        try await ControlPlane.run({ $0.webhookAllowLoopback = false }) { plane in
            let refused = try await plane.call(.post, "/webhooks", json: #"{"url": "http://127.0.0.1:9/hook", "events": ["created"]}"#)
            #expect(refused.status == 400, "\(refused)")
            #expect(try refused.decode(WireError.self).message.contains("loopback"))
            #expect(try await plane.call(.get, "/webhooks").decode([WireWebhook.Listed].self).isEmpty)
        }
    }
}

extension WireWebhook {
    /// `GET /webhooks` items (no secret).
    struct Listed: Decodable, Sendable {
        var id: String
        var url: String
        var events: [String]
    }
}
