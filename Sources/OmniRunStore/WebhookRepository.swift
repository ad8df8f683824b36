import Foundation

public struct WebhookRecord: Sendable, Equatable {
    public var id: String
    public var accountID: String
    public var url: String
    public var events: [String]
    public var secret: String
    public var createdAt: Int64

    public init(id: String, accountID: String, url: String, events: [String], secret: String, createdAt: Int64) {
        self.id = id
        self.accountID = accountID
        self.url = url
        self.events = events
        self.secret = secret
        self.createdAt = createdAt
    }
}

/// One event on its way to one webhook: `pending` (due at `nextAttemptAt`), `delivered`
/// or `failed` (every attempt used, or refused).
public struct WebhookDeliveryRecord: Sendable, Equatable {
    public var id: String
    public var webhookID: String
    public var event: String
    public var sandboxID: String?
    public var payload: String
    public var status: String
    public var attempts: Int
    public var lastStatus: Int?
    public var lastError: String?
    public var createdAt: Int64
    public var nextAttemptAt: Int64?
    public var deliveredAt: Int64?

    public init(
        id: String, webhookID: String, event: String, sandboxID: String?, payload: String, status: String, attempts: Int,
        lastStatus: Int? = nil, lastError: String? = nil, createdAt: Int64, nextAttemptAt: Int64?, deliveredAt: Int64? = nil
    ) {
        self.id = id
        self.webhookID = webhookID
        self.event = event
        self.sandboxID = sandboxID
        self.payload = payload
        self.status = status
        self.attempts = attempts
        self.lastStatus = lastStatus
        self.lastError = lastError
        self.createdAt = createdAt
        self.nextAttemptAt = nextAttemptAt
        self.deliveredAt = deliveredAt
    }
}

public struct WebhookRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    public func insert(_ webhook: WebhookRecord) async throws {
        try await database.query(
            "INSERT INTO webhooks (id, account_id, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                .text(webhook.id), .text(webhook.accountID), .text(webhook.url), .text(Self.encode(webhook.events)),
                .text(webhook.secret), .int(webhook.createdAt),
            ])
    }

    public func list(accountID: String) async throws -> [WebhookRecord] {
        try await database.query("SELECT * FROM webhooks WHERE account_id = ? ORDER BY created_at, id", [.text(accountID)])
            .map(Self.webhook)
    }

    public func find(id: String) async throws -> WebhookRecord? {
        try await database.query("SELECT * FROM webhooks WHERE id = ?", [.text(id)]).first.map(Self.webhook)
    }

    /// Removes a webhook and its deliveries; false if the account has no such webhook.
    public func delete(id: String, accountID: String) async throws -> Bool {
        try await database.transaction { tx in
            let found = try await tx.query("SELECT id FROM webhooks WHERE id = ? AND account_id = ?", [.text(id), .text(accountID)])
            guard !found.isEmpty else { return false }
            try await tx.query("DELETE FROM webhook_deliveries WHERE webhook_id = ?", [.text(id)])
            try await tx.query("DELETE FROM webhooks WHERE id = ?", [.text(id)])
            return true
        }
    }

    public func insertDelivery(_ delivery: WebhookDeliveryRecord) async throws {
        try await database.query(
            """
            INSERT INTO webhook_deliveries (id, webhook_id, event, sandbox_id, payload, status, attempts, created_at, next_attempt_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(delivery.id), .text(delivery.webhookID), .text(delivery.event), SQLValue(delivery.sandboxID),
                .text(delivery.payload), .text(delivery.status), SQLValue(delivery.attempts), .int(delivery.createdAt),
                SQLValue(delivery.nextAttemptAt),
            ])
    }

    /// Pending deliveries whose next attempt is due.
    public func due(at now: Int64, limit: Int) async throws -> [WebhookDeliveryRecord] {
        try await database.query(
            "SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
            [.int(now), SQLValue(limit)]
        ).map(Self.delivery)
    }

    /// Records one attempt: delivered, failed for good, or pending again at `nextAttemptAt`.
    public func recordAttempt(
        id: String, status: String, attempts: Int, httpStatus: Int?, error: String?, nextAttemptAt: Int64?, deliveredAt: Int64?
    ) async throws {
        try await database.query(
            """
            UPDATE webhook_deliveries SET status = ?, attempts = ?, last_status = ?, last_error = ?, next_attempt_at = ?,
                delivered_at = ? WHERE id = ?
            """,
            [
                .text(status), SQLValue(attempts), SQLValue(httpStatus.map { Int64($0) }), SQLValue(error),
                SQLValue(nextAttemptAt), SQLValue(deliveredAt), .text(id),
            ])
    }

    public func deliveries(webhookID: String, limit: Int) async throws -> [WebhookDeliveryRecord] {
        try await database.query(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            [.text(webhookID), SQLValue(limit)]
        ).map(Self.delivery)
    }

    static func webhook(_ row: SQLRow) throws -> WebhookRecord {
        WebhookRecord(
            id: try row.string("id"), accountID: try row.string("account_id"), url: try row.string("url"),
            events: decode(row.optionalString("events")), secret: try row.string("secret"), createdAt: try row.int("created_at"))
    }

    static func delivery(_ row: SQLRow) throws -> WebhookDeliveryRecord {
        WebhookDeliveryRecord(
            id: try row.string("id"), webhookID: try row.string("webhook_id"), event: try row.string("event"),
            sandboxID: row.optionalString("sandbox_id"), payload: try row.string("payload"), status: try row.string("status"),
            attempts: Int(try row.int("attempts")), lastStatus: row.optionalInt("last_status").map { Int($0) },
            lastError: row.optionalString("last_error"), createdAt: try row.int("created_at"),
            nextAttemptAt: row.optionalInt("next_attempt_at"), deliveredAt: row.optionalInt("delivered_at"))
    }

    static func encode(_ events: [String]) -> String {
        String(decoding: (try? JSONEncoder().encode(events)) ?? Data("[]".utf8), as: UTF8.self)
    }

    static func decode(_ text: String?) -> [String] {
        guard let data = text?.data(using: .utf8) else { return [] }
        return (try? JSONDecoder().decode([String].self, from: data)) ?? []
    }
}
