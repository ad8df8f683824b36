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
/// a restart. Redirects are not followed.
actor WebhookDispatcher {
    let repository: WebhookRepository
    let policy: WebhookAddressPolicy
    let sealer: WebhookSecretSealer
    let retryBase: Duration
    let maxAttempts: Int
    let logger: Logger
    private let http: HTTPClient
    private var wake: AsyncStream<Void>.Continuation?
    private var inFlight: Set<String> = []

    init(
        repository: WebhookRepository, policy: WebhookAddressPolicy, sealer: WebhookSecretSealer, retryBase: Duration,
        maxAttempts: Int = 6, logger: Logger
    ) {
        self.repository = repository
        self.policy = policy
        self.sealer = sealer
        self.retryBase = retryBase
        self.maxAttempts = maxAttempts
        self.logger = logger
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
        configuration.redirectConfiguration = .disallow
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Delivers what is due now (called by the loop, and when events are queued).
    nonisolated func poke() {
        Task { await self.signal() }
    }

    private func signal() { wake?.yield() }

    func run() async {
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

    func shutdown() async {
        wake?.finish()
        try? await http.shutdown()
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
            guard let host = URLComponents(string: webhook.url)?.host else { throw WebhookError("the URL has no host") }
            try await policy.checkResolved(host: host)
            var request = HTTPClientRequest(url: webhook.url)
            request.method = .POST
            let body = Array(delivery.payload.utf8)
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "omnirun-webhooks/\(OmniRunVersion.current)")
            request.headers.add(name: "X-OmniRun-Event", value: delivery.event)
            request.headers.add(name: "X-OmniRun-Delivery", value: delivery.id)
            request.headers.add(name: "X-OmniRun-Signature", value: WebhookService.signature(body: body, secret: try sealer.open(webhook.secret, webhookID: webhook.id)))
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await http.execute(request, timeout: .seconds(10))
            httpStatus = Int(response.status.code)
            _ = try? await response.body.collect(upTo: 64 << 10)
            if !(200..<300).contains(httpStatus ?? 0) { failure = "the receiver answered \(httpStatus ?? 0)" }
        } catch let error as WebhookError {
            failure = error.message
        } catch {
            failure = "\(error)"
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

struct WebhookError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

struct WebhookDispatcherService: Service {
    let dispatcher: WebhookDispatcher

    func run() async throws {
        await cancelWhenGracefulShutdown { await dispatcher.run() }
        await dispatcher.shutdown()
    }
}
