import OmniRunCore
import OmniRunStore
import Synchronization
import Testing

@testable import OmniRunControl
@testable import OmniRunServer

/// The sandbox lifecycle without a server: every subscriber hears every event, in the
/// order published, before the publish returns; the end of a sandbox maps to the webhook
/// event and reason its owner is promised (wire protocol §11).
@Suite("Sandbox lifecycle")
struct SandboxLifecycleTests {
    static func record(_ id: String) -> SandboxRecord {
        SandboxRecord(
            id: id, accountID: "acc_1", template: "playground", state: .running, createdAt: 1, timeoutSeconds: 0, expiresAt: nil,
            lastActivityAt: 1, metadata: [:], env: [:], vaultInject: false, cpuCount: 1, memoryMB: 256)
    }

    @Test func subscribersHearEveryEventInOrderBeforeThePublishReturns() async throws {
        let lifecycle = SandboxLifecycle()
        let heard = Mutex<[String]>([])
        lifecycle.subscribe { event in
            try? await Task.sleep(for: .milliseconds(5))
            let name =
                switch event.kind {
                case .created: "created"
                case .paused: "paused"
                case .resumed: "resumed"
                case .ended(let reason): "ended \(reason.rawValue)"
                }
            heard.withLock { $0.append("all:" + name) }
        }
        lifecycle.onEnded { id in heard.withLock { $0.append("ended:\(id)") } }
        let id = try #require(SandboxID("sb_lifecyc1"))
        for kind: SandboxLifecycleEvent.Kind in [.created, .paused, .resumed, .ended(.killed)] {
            await lifecycle.publish(SandboxLifecycleEvent(kind: kind, sandboxID: id, record: Self.record(id.rawValue)))
        }
        #expect(
            heard.withLock { $0 } == [
                "all:created", "all:paused", "all:resumed", "all:ended killed", "ended:sb_lifecyc1",
            ])
    }

    @Test func endsMapToTheWebhookEventsOwnersAreTold() throws {
        let id = try #require(SandboxID("sb_lifecyc2"))
        func mapped(_ kind: SandboxLifecycleEvent.Kind, reason: String? = nil) -> String {
            let (event, said) = WebhookService.webhookEvent(
                for: SandboxLifecycleEvent(kind: kind, sandboxID: id, record: Self.record(id.rawValue), reason: reason))
            return event.rawValue + (said.map { " " + $0 } ?? "")
        }
        #expect(mapped(.created, reason: "fork of sb_x") == "created fork of sb_x")
        #expect(mapped(.paused, reason: "idle") == "paused idle")
        #expect(mapped(.resumed) == "resumed")
        #expect(mapped(.ended(.killed)) == "killed")
        #expect(mapped(.ended(.timeout)) == "timeout")
        #expect(mapped(.ended(.idle)) == "idle_killed")
        #expect(mapped(.ended(.retention)) == "timeout retention")
        #expect(mapped(.ended(.lost)) == "error lost")
        #expect(mapped(.ended(.failed("pause"))) == "error failed: pause")
        #expect(Set(SandboxEvent.allCases.map(\.rawValue)) == WebhookService.events)
    }
}
