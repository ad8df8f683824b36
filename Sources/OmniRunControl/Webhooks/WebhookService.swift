import Crypto
import Foundation
import Logging
import OmniRunError
import OmniRunStore

/// Webhooks (wire protocol §11): an account registers URLs for sandbox lifecycle events;
/// each event becomes one recorded delivery per subscribed webhook, POSTed as JSON and
/// signed with the webhook's secret (`WebhookDispatcher`). Emitting never waits for a
/// delivery, so the lifecycle never blocks on a receiver.
package actor WebhookService {
    package static let events = Set(SandboxEvent.allCases.map(\.rawValue))
    package static let maxPerAccount = 20

    package nonisolated let repository: WebhookRepository
    package nonisolated let policy: WebhookAddressPolicy
    package nonisolated let sealer: WebhookSecretSealer
    package nonisolated let logger: Logger
    /// Called after deliveries are queued (wakes the dispatcher).
    private var onQueued: (@Sendable () -> Void)?

    package init(repository: WebhookRepository, policy: WebhookAddressPolicy, sealer: WebhookSecretSealer, logger: Logger) {
        self.repository = repository
        self.policy = policy
        self.sealer = sealer
        self.logger = logger
    }

    package func setOnQueued(_ handler: @escaping @Sendable () -> Void) {
        onQueued = handler
    }

    package func create(url: String?, events: [String]?, account: AccountRecord) async throws -> WebhookRecord {
        guard let url, !url.isEmpty else { throw OmniRunError(.invalidArgument, "url is required") }
        guard url.utf8.count <= 2048, let components = URLComponents(string: url),
            let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = components.host, !host.isEmpty, components.user == nil, components.password == nil
        else {
            throw OmniRunError(.invalidArgument, "url must be an http(s) URL with a host (and no credentials)")
        }
        try policy.check(host: host)
        guard let events, !events.isEmpty else {
            throw OmniRunError(
                .invalidArgument, "events is required: one or more of \(Self.events.sorted().joined(separator: ", "))")
        }
        let unknown = events.filter { !Self.events.contains($0) }
        guard unknown.isEmpty else {
            throw OmniRunError(
                .invalidArgument,
                "unknown event '\(unknown[0])' (known: \(Self.events.sorted().joined(separator: ", ")))")
        }
        guard try await repository.list(accountID: account.id).count < Self.maxPerAccount else {
            throw OmniRunError(.limitReached, "at most \(Self.maxPerAccount) webhooks per account")
        }
        var unique: [String] = []
        for event in events where !unique.contains(event) { unique.append(event) }
        let id = randomID("wh_")
        let secret = WebhookSecretSealer.clearPrefix + randomBytes(32).map { String(format: "%02x", $0) }.joined()
        var webhook = WebhookRecord(
            id: id, accountID: account.id, url: url, events: unique, secret: try sealer.seal(secret, webhookID: id),
            createdAt: nowMillis())
        try await repository.insert(webhook)
        webhook.secret = secret  // shown once, in the create answer
        logger.info("webhook created", metadata: ["webhook": "\(webhook.id)", "account": "\(account.id)"])
        return webhook
    }

    package func list(account: AccountRecord) async throws -> [WebhookRecord] {
        try await repository.list(accountID: account.id)
    }

    package func delete(_ id: String, account: AccountRecord) async throws {
        guard try await repository.delete(id: id, accountID: account.id) else {
            throw OmniRunError(.notFound, "webhook \(id) not found")
        }
    }

    package func deliveries(_ id: String, account: AccountRecord, limit: Int) async throws -> [WebhookDeliveryRecord] {
        guard let webhook = try await repository.find(id: id), webhook.accountID == account.id else {
            throw OmniRunError(.notFound, "webhook \(id) not found")
        }
        return try await repository.deliveries(webhookID: webhook.id, limit: limit)
    }

    /// What a receiver gets (the body that is signed).
    package struct Payload: Encodable {
        package var id: String
        package var event: String
        package var sandboxID: String
        package var templateID: String
        package var timestamp: String
        package var metadata: [String: String]
        package var reason: String?
    }

    /// Queues the event for every webhook of the account that asked for it; returns at once.
    package nonisolated func emit(
        _ event: SandboxEvent, sandboxID: String, templateID: String, accountID: String, metadata: [String: String],
        reason: String? = nil
    ) {
        Task { await self.enqueue(event.rawValue, sandboxID: sandboxID, templateID: templateID, accountID: accountID, metadata: metadata, reason: reason) }
    }

    private func enqueue(
        _ event: String, sandboxID: String, templateID: String, accountID: String, metadata: [String: String], reason: String?
    ) async {
        do {
            let now = nowMillis()
            var queued = 0
            for webhook in try await repository.list(accountID: accountID) where webhook.events.contains(event) {
                let id = randomID("whd_")
                let payload = Payload(
                    id: id, event: event, sandboxID: sandboxID, templateID: templateID, timestamp: isoDate(now),
                    metadata: metadata, reason: reason)
                let body = String(decoding: try WireFormat.encoder.encode(payload), as: UTF8.self)
                try await repository.insertDelivery(
                    WebhookDeliveryRecord(
                        id: id, webhookID: webhook.id, event: event, sandboxID: sandboxID, payload: body, status: "pending",
                        attempts: 0, createdAt: now, nextAttemptAt: now))
                queued += 1
            }
            if queued > 0 { onQueued?() }
        } catch {
            logger.error("queueing a webhook event failed", metadata: ["event": "\(event)", "sandbox": "\(sandboxID)", "error": "\(error)"])
        }
    }

    /// `sha256=` and the hex HMAC-SHA256 of the body under the webhook's secret.
    package static func signature(body: [UInt8], secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }
}
