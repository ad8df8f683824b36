import Foundation
import Hummingbird
import OmniRunControl
import OmniRunError
import OmniRunStore

/// `POST /webhooks`, `GET /webhooks`, `DELETE /webhooks/{id}` (wire protocol §11) and
/// `GET /webhooks/{id}/deliveries` (the recorded deliveries with their attempts).
struct WebhookController {
    let service: WebhookService

    struct CreateBody: Decodable {
        var url: String?
        var events: [String]?
    }

    struct Created: Encodable {
        var id: String
        var url: String
        var events: [String]
        /// Shown only here: receivers check `X-OmniRun-Signature` with it.
        var secret: String
        var createdAt: String
    }

    struct Item: Encodable {
        var id: String
        var url: String
        var events: [String]
        var createdAt: String
    }

    struct Delivery: Encodable {
        var id: String
        var event: String
        var sandboxID: String?
        var status: String
        var attempts: Int
        var lastStatus: Int?
        var lastError: String?
        var createdAt: String
        var nextAttemptAt: String?
        var deliveredAt: String?
    }

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/webhooks") { request, context -> Response in
            let body = try await JSON.decode(CreateBody.self, from: request, limit: 64 << 10)
            let webhook = try await service.create(url: body.url, events: body.events, account: try context.requireAccount())
            return JSON.response(
                Created(
                    id: webhook.id, url: webhook.url, events: webhook.events, secret: webhook.secret,
                    createdAt: isoDate(webhook.createdAt)),
                status: .created)
        }
        router.get("/webhooks") { _, context -> Response in
            let hooks = try await service.list(account: try context.requireAccount())
            return JSON.response(hooks.map { Item(id: $0.id, url: $0.url, events: $0.events, createdAt: isoDate($0.createdAt)) })
        }
        router.delete("/webhooks/:webhook") { _, context -> Response in
            try await service.delete(try context.parameters.require("webhook"), account: try context.requireAccount())
            return JSON.noContent()
        }
        router.get("/webhooks/:webhook/deliveries") { request, context -> Response in
            let limit = try SandboxController.limit(request.query["limit"], default: 100)
            let deliveries = try await service.deliveries(
                try context.parameters.require("webhook"), account: try context.requireAccount(), limit: limit)
            return JSON.response(
                deliveries.map {
                    Delivery(
                        id: $0.id, event: $0.event, sandboxID: $0.sandboxID, status: $0.status, attempts: $0.attempts,
                        lastStatus: $0.lastStatus, lastError: $0.lastError, createdAt: isoDate($0.createdAt),
                        nextAttemptAt: $0.status == "pending" ? $0.nextAttemptAt.map(isoDate) : nil,
                        deliveredAt: $0.deliveredAt.map(isoDate))
                })
        }
        return router
    }
}
