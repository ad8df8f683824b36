import Foundation
import Hummingbird
import OmniRunControl
import OmniRunError
import OmniRunStore

/// `/sandboxes/{id}/exposures` (wire protocol §10).
struct ExposureController {
    let service: ExposureService
    let settings: PreviewSettings

    struct CreateBody: Decodable {
        var port: Int?
        var visibility: String?
        var requestedTtlSeconds: Int64?
        var slug: String?
        var openPath: String?
        var preserveHost: Bool?
    }

    struct RefreshBody: Decodable {
        var requestedTtlSeconds: Int64?
    }

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/sandboxes/:id/exposures", use: create)
        router.get("/sandboxes/:id/exposures", use: list)
        router.get("/sandboxes/:id/exposures/:exp", use: get)
        router.delete("/sandboxes/:id/exposures/:exp", use: delete)
        router.post("/sandboxes/:id/exposures/:exp/refresh", use: refresh)
        return router
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(CreateBody.self, from: request, limit: 64 << 10)
        let record = try await service.create(try validate(body), sandboxID: try context.parameters.require("id"), account: account)
        return JSON.response(await view(record), status: .created)
    }

    func validate(_ body: CreateBody) throws -> ExposureRequest {
        guard let port = body.port else { throw OmniRunError(.invalidArgument, "port is required") }
        guard (1...65535).contains(port) else { throw OmniRunError(.invalidArgument, "port must be between 1 and 65535") }
        let visibility = body.visibility ?? "public"
        guard visibility == "public" || visibility == "private" else {
            throw OmniRunError(.invalidArgument, "visibility must be public or private")
        }
        let ttl = try Self.ttl(body.requestedTtlSeconds, settings: settings)
        var slug: String?
        if let given = body.slug, !given.isEmpty {
            let lowered = given.lowercased()
            let allowed = lowered.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
            guard allowed, lowered.count <= 40, !lowered.hasPrefix("-"), !lowered.hasSuffix("-") else {
                throw OmniRunError(.invalidArgument, "slug must be 1-40 letters, digits or inner dashes")
            }
            slug = lowered
        }
        let openPath = body.openPath.flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        guard openPath.hasPrefix("/"), openPath.count <= 2048,
            openPath.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f && $0 != "#" })
        else {
            throw OmniRunError(.invalidArgument, "openPath must be a URL path starting with / (printable ASCII, no spaces)")
        }
        return ExposureRequest(
            port: port, visibility: visibility, ttlSeconds: ttl, slug: slug, openPath: openPath,
            preserveHost: body.preserveHost ?? true)
    }

    static func ttl(_ value: Int64?, settings: PreviewSettings) throws -> Int64? {
        guard let value else { return nil }
        guard value >= 1, value <= settings.maxTTLSeconds else {
            throw OmniRunError(.invalidArgument, "requestedTtlSeconds must be between 1 and \(settings.maxTTLSeconds)")
        }
        return value
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let records = try await service.list(sandboxID: try context.parameters.require("id"))
        var views: [ExposureInfo] = []
        for record in records { views.append(await view(record)) }
        return JSON.response(views)
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let record = try await service.get(try context.parameters.require("exp"), sandboxID: try context.parameters.require("id"))
        return JSON.response(await view(record))
    }

    @Sendable func refresh(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(RefreshBody.self, from: request, limit: 64 << 10)
        let record = try await service.refresh(
            try context.parameters.require("exp"), sandboxID: try context.parameters.require("id"),
            ttlSeconds: try Self.ttl(body.requestedTtlSeconds, settings: settings))
        return JSON.response(await view(record))
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await service.revoke(try context.parameters.require("exp"), sandboxID: try context.parameters.require("id"))
        return JSON.noContent()
    }

    func view(_ record: ExposureRecord) async -> ExposureInfo {
        ExposureInfo(record, url: await service.url(record), accessUrl: await service.accessURL(record))
    }
}

/// ExposureInfo (wire protocol §10), all camelCase.
struct ExposureInfo: Encodable {
    var id: String
    var sandboxId: String
    var accountId: String
    var port: Int
    var hostname: String
    var url: String
    var accessUrl: String?
    var visibility: String
    var status: String
    var createdAt: String
    var expiresAt: String
    var revokedAt: String?
    var sandboxStoppedAt: String?
    var lastAccessedAt: String?
    var openPath: String
    var preserveHost: Bool
    var createdBy: String?

    init(_ record: ExposureRecord, url: String, accessUrl: String?) {
        id = record.id
        sandboxId = record.sandboxID
        accountId = record.accountID
        port = record.port
        hostname = record.hostname
        self.url = url
        self.accessUrl = accessUrl
        visibility = record.visibility
        status = record.status
        createdAt = isoDate(record.createdAt)
        expiresAt = isoDate(record.expiresAt)
        revokedAt = record.revokedAt.map(isoDate)
        sandboxStoppedAt = record.sandboxStoppedAt.map(isoDate)
        lastAccessedAt = record.lastAccessedAt.map(isoDate)
        openPath = record.openPath
        preserveHost = record.preserveHost
        createdBy = record.createdBy
    }
}
