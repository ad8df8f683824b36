import OmniRunCore
import OmniRunStore
import Synchronization

/// What happened to a sandbox.
package struct SandboxLifecycleEvent: Sendable {
    package enum Kind: Sendable, Equatable {
        case created
        case paused
        case resumed
        /// Whatever the cause: killed, timed out, idle, past its retention, lost at a
        /// restart, or its machine failed.
        case ended(EndReason)
    }

    package var kind: Kind
    package var sandboxID: SandboxID
    /// The sandbox's record (nil for a machine that died before the server had one).
    package var record: SandboxRecord?
    /// Words for the owner's webhook (`fork of sb_…`, why it paused).
    package var reason: String?
}

/// The sandbox service's events, in the order they happened, to whoever subscribed:
/// webhooks, exposures, e2ee sessions and terminals learn of a sandbox's life here
/// instead of the service knowing each of them. A publish returns once every subscriber
/// has handled the event (so when a kill answers, the sandbox's exposures, keys and
/// terminals are gone); a subscriber that has slow work to do (a webhook delivery) queues
/// it and returns.
package final class SandboxLifecycle: Sendable {
    package typealias Subscriber = @Sendable (SandboxLifecycleEvent) async -> Void

    private let subscribers = Mutex<[Subscriber]>([])

    package init() {}

    package func subscribe(_ subscriber: @escaping Subscriber) {
        subscribers.withLock { $0.append(subscriber) }
    }

    /// Subscribes to the end of sandboxes only.
    package func onEnded(_ handler: @escaping @Sendable (SandboxID) async -> Void) {
        subscribe { event in
            if case .ended = event.kind { await handler(event.sandboxID) }
        }
    }

    package func publish(_ event: SandboxLifecycleEvent) async {
        for subscriber in subscribers.withLock({ $0 }) { await subscriber(event) }
    }
}

extension WebhookService {
    /// The webhook event an account hears for a lifecycle event, and its `reason`.
    package static func webhookEvent(for event: SandboxLifecycleEvent) -> (event: SandboxEvent, reason: String?) {
        switch event.kind {
        case .created: (.created, event.reason)
        case .paused: (.paused, event.reason)
        case .resumed: (.resumed, nil)
        case .ended(.killed): (.killed, nil)
        case .ended(.timeout): (.timeout, nil)
        case .ended(.idle): (.idleKilled, nil)
        case .ended(.retention): (.timeout, EndReason.retention.rawValue)
        case .ended(let reason): (.error, reason.rawValue)
        }
    }

    /// Queues every lifecycle event of `lifecycle` for the owners' webhooks (never waits
    /// for a delivery).
    package nonisolated func follow(_ lifecycle: SandboxLifecycle) {
        lifecycle.subscribe { [self] event in
            guard let record = event.record else { return }
            let (name, reason) = Self.webhookEvent(for: event)
            emit(
                name, sandboxID: record.id, templateID: record.template, accountID: record.accountID, metadata: record.metadata,
                reason: reason)
        }
    }
}
