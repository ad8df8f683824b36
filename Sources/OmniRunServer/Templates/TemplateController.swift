import Foundation
import Hummingbird
import OmniRunControl
import OmniRunError
import OmniRunStore
import TemplateBuilder

/// Template routes: the catalogue, and custom templates built from a Dockerfile.
struct TemplateController {
    let service: TemplateService
    let configuration: ServerConfiguration
    /// Builds (uploading, queued, running) and context bytes each account may hold.
    let quota: BuildQuota

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.get("/templates", use: list)
        router.post("/templates", use: create)
        router.get("/templates/:name", use: info)
        router.delete("/templates/:name", use: delete)
        router.get("/templates/:name/builds/:build", use: build)
        return router
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
        // A place in the account's build quota before a byte of the upload is read.
        let (ticket, allowance) = try await quota.reserve(accountID: account.id, largest: configuration.maxBuildContext)
        let upload: TemplateUpload
        do {
            upload = try await TemplateUpload.read(
                request, contextDirectory: service.uploadDirectory, maxContext: configuration.maxBuildContext,
                quotaLeft: allowance < configuration.maxBuildContext ? allowance : nil)
        } catch {
            await quota.release(ticket)
            throw error
        }
        await quota.settle(ticket, bytes: upload.contextBytes)
        do {
            let quota = self.quota
            let (template, build) = try await service.create(
                dockerfile: upload.dockerfile, settings: upload.settings, contextPath: upload.contextPath, account: account
            ) { await quota.release(ticket) }
            return JSON.response(
                TemplateBuildView(
                    templateID: template.templateID, buildID: build.id, status: build.status, error: nil,
                    createdAt: isoDate(build.createdAt), finishedAt: nil, logs: nil, steps: nil),
                status: .accepted)
        } catch {
            if let path = upload.contextPath { try? FileManager.default.removeItem(atPath: path) }
            await quota.release(ticket)
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
                    createdAt: isoDate(current.createdAt), finishedAt: current.finishedAt.map(isoDate), logs: log.text,
                    steps: log.steps))
        }
        return SSE.response { send in
            for await event in log.follow() {
                switch event {
                case .line(let line):
                    try await send(SSE.line(BuildEvent(type: "log", line: line)))
                case .step(let progress):
                    try await send(SSE.line(BuildEvent(type: "step", line: progress.text, step: progress)))
                case .finished(let status, let error):
                    try await send(SSE.line(BuildEvent(type: "end", status: status, error: error)))
                }
            }
        }
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await service.delete(try context.parameters.require("name"), account: try context.requireAccount())
        return JSON.noContent()
    }

    /// One event of a build's stream: `log` (a line), `step` (a step's progress: `step`,
    /// `total`, `line` of the Dockerfile as `dockerfileLine`, `command`, `stepStatus`
    /// (`running`, `cached`, `done`, `failed`), `elapsedSeconds`, and the log line that
    /// tells it as `line`), `end` (the build's outcome).
    struct BuildEvent: Encodable {
        var type: String
        var line: String? = nil
        var status: String? = nil
        var error: String? = nil
        var step: StepProgress? = nil

        enum CodingKeys: String, CodingKey {
            case type, line, status, error, step, total, dockerfileLine, command, stepStatus, elapsedSeconds
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(type, forKey: .type)
            try container.encodeIfPresent(line, forKey: .line)
            try container.encodeIfPresent(status, forKey: .status)
            try container.encodeIfPresent(error, forKey: .error)
            if let step {
                try container.encode(step.step, forKey: .step)
                try container.encode(step.total, forKey: .total)
                try container.encodeIfPresent(step.line, forKey: .dockerfileLine)
                try container.encode(step.command, forKey: .command)
                try container.encode(step.status.rawValue, forKey: .stepStatus)
                try container.encodeIfPresent(step.elapsedSeconds, forKey: .elapsedSeconds)
            }
        }
    }
}
