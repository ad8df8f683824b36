import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import OmniRunStore
import ServiceLifecycle

/// Delivers queued webhook events: POSTs each one's JSON body with
/// `X-OmniRun-Signature: sha256=<hex HMAC-SHA256 of the body, keyed by the webhook's
/// secret>`, `X-OmniRun-Event` and `X-OmniRun-Delivery`. A 2xx answer delivers it;
/// anything else (or no answer in 10 s) is retried with exponential back-off (base
/// `OMNIRUN_WEBHOOK_RETRY_BASE_MS`, default 2 s: 2, 4, 8, 16, 32 s) up to `maxAttempts`,
/// then it is `failed`. Every attempt is recorded on the delivery; pending ones survive
/// a restart. Redirects are not followed; the receiver's address is resolved and checked
/// once per attempt and connected to as checked (`WebhookSender`).
package actor WebhookDispatcher {
    package nonisolated let repository: WebhookRepository
    package nonisolated let policy: WebhookAddressPolicy
    package nonisolated let sealer: WebhookSecretSealer
    package nonisolated let retryBase: Duration
    package nonisolated let maxAttempts: Int
    package nonisolated let logger: Logger
    private let sender: WebhookSender
    private var wake: AsyncStream<Void>.Continuation?
    private var inFlight: Set<String> = []

    package init(
        repository: WebhookRepository, policy: WebhookAddressPolicy, sealer: WebhookSecretSealer, retryBase: Duration,
        maxAttempts: Int = 6, logger: Logger
    ) {
        self.repository = repository
        self.policy = policy
        self.sealer = sealer
        self.retryBase = retryBase
        self.maxAttempts = maxAttempts
        self.logger = logger
        sender = WebhookSender(policy: policy)
    }

    /// Delivers what is due now (called by the loop, and when events are queued).
    package nonisolated func poke() {
        Task { await self.signal() }
    }

    private func signal() { wake?.yield() }

    package func run() async {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        wake = continuation
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // A tick for retries that come due.
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(250))
                    continuation.yield()
                }
            }
            for await _ in stream {
                if Task.isCancelled { break }
                await deliverDue()
            }
            group.cancelAll()
        }
    }

    package func shutdown() async {
        wake?.finish()
    }

    private func deliverDue() async {
        guard let due = try? await repository.due(at: nowMillis(), limit: 50) else { return }
        for delivery in due where !inFlight.contains(delivery.id) {
            inFlight.insert(delivery.id)
            Task {
                await self.attempt(delivery)
                self.finished(delivery.id)
            }
        }
    }

    private func finished(_ id: String) { inFlight.remove(id) }

    private func attempt(_ delivery: WebhookDeliveryRecord) async {
        guard let webhook = try? await repository.find(id: delivery.webhookID) else { return }
        let attempts = delivery.attempts + 1
        var httpStatus: Int? = nil
        var failure: String? = nil
        do {
            let body = Array(delivery.payload.utf8)
            let signature = WebhookService.signature(body: body, secret: try sealer.open(webhook.secret, webhookID: webhook.id))
            let outcome = await sender.send(
                url: webhook.url,
                headers: [
                    ("Content-Type", "application/json"), ("User-Agent", "omnirun-webhooks/\(OmniRunVersion.current)"),
                    ("X-OmniRun-Event", delivery.event), ("X-OmniRun-Delivery", delivery.id), ("X-OmniRun-Signature", signature),
                ], body: body)
            httpStatus = outcome.status
            failure = outcome.failure
        } catch {
            failure = "the webhook's secret cannot be opened"
        }
        let now = nowMillis()
        do {
            if failure == nil {
                try await repository.recordAttempt(
                    id: delivery.id, status: "delivered", attempts: attempts, httpStatus: httpStatus, error: nil,
                    nextAttemptAt: nil, deliveredAt: now)
            } else if attempts >= maxAttempts {
                try await repository.recordAttempt(
                    id: delivery.id, status: "failed", attempts: attempts, httpStatus: httpStatus, error: failure,
                    nextAttemptAt: nil, deliveredAt: nil)
                logger.warning(
                    "webhook delivery failed for good",
                    metadata: ["delivery": "\(delivery.id)", "webhook": "\(webhook.id)", "error": "\(failure ?? "")"])
            } else {
                let delay = retryBase * (1 << (attempts - 1))
                let millis = delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000
                try await repository.recordAttempt(
                    id: delivery.id, status: "pending", attempts: attempts, httpStatus: httpStatus, error: failure,
                    nextAttemptAt: now + millis, deliveredAt: nil)
            }
        } catch {
            logger.error("recording a webhook delivery failed", metadata: ["delivery": "\(delivery.id)", "error": "\(error)"])
        }
    }
}

package struct WebhookError: Error {
    package let message: String
    package init(_ message: String) { self.message = message }
}

package struct WebhookDispatcherService: Service {
    package let dispatcher: WebhookDispatcher

    package func run() async throws {
        await cancelWhenGracefulShutdown { await dispatcher.run() }
        await dispatcher.shutdown()
    }
}
