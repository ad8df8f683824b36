import Foundation
import Hummingbird
import OmniRunError
import OmniRunStore
import TemplateBuilder

/// Template routes: the catalogue, and custom templates built from a Dockerfile.
struct TemplateController {
    let service: TemplateService
    let configuration: ServerConfiguration

    func register(on router: Router<AppRequestContext>) {
        router.get("/templates", use: list)
        router.post("/templates", use: create)
        router.get("/templates/:name", use: info)
        router.delete("/templates/:name", use: delete)
        router.get("/templates/:name/builds/:build", use: build)
    }

    /// A bare JSON array, like `GET /sandboxes`.
    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        JSON.response(try await service.list(account: try context.requireAccount()))
    }

    @Sendable func info(_ request: Request, context: AppRequestContext) async throws -> Response {
        JSON.response(try await service.find(try context.parameters.require("name"), account: try context.requireAccount()))
    }

    /// Multipart: `dockerfile`, `settings` (JSON) and optionally `context` (a tar). 202 with the build.
    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let upload = try await TemplateUpload.read(
            request, contextDirectory: service.uploadDirectory, maxContext: configuration.maxBuildContext)
        do {
            let (template, build) = try await service.create(upload, account: account)
            return JSON.response(
                TemplateBuildView(
                    templateID: template.templateID, buildID: build.id, status: build.status, error: nil,
                    createdAt: isoDate(build.createdAt), finishedAt: nil, logs: nil),
                status: .accepted)
        } catch {
            if let path = upload.contextPath { try? FileManager.default.removeItem(atPath: path) }
            throw error
        }
    }

    /// The build's log: server-sent events (`Accept: text/event-stream`) that replay it from
    /// the start, follow it and end with the outcome; otherwise JSON with the log so far.
    @Sendable func build(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let name = try context.parameters.require("name")
        let (build, log) = try await service.build(name, id: try context.parameters.require("build"), account: account)
        let wantsStream = (request.headers[.accept] ?? "").contains("text/event-stream") || request.uri.queryParameters["stream"] == "1"
        guard wantsStream else {
            let current = try await service.build(name, id: build.id, account: account).0
            return JSON.response(
                TemplateBuildView(
                    templateID: name, buildID: current.id, status: current.status, error: current.error,
                    createdAt: isoDate(current.createdAt), finishedAt: current.finishedAt.map(isoDate), logs: log.text))
        }
        return SSE.response { send in
            for await event in log.follow() {
                switch event {
                case .line(let line):
                    try await send(SSE.line(BuildEvent(type: "log", line: line, status: nil, error: nil)))
                case .finished(let status, let error):
                    try await send(SSE.line(BuildEvent(type: "end", line: nil, status: status, error: error)))
                }
            }
        }
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await service.delete(try context.parameters.require("name"), account: try context.requireAccount())
        return JSON.noContent()
    }

    /// One event of a build's stream.
    struct BuildEvent: Encodable {
        var type: String
        var line: String?
        var status: String?
        var error: String?
    }
}
