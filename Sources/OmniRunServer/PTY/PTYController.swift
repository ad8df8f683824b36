import AgentProtocol
import Foundation
import Hummingbird
import OmniRunControl
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// PTY routes (wire protocol §7).
struct PTYController {
    let service: SandboxService
    let sessions: PTYSessions
    let configuration: ServerConfiguration

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/sandboxes/:id/pty", use: create)
        router.get("/sandboxes/:id/pty", use: list)
        router.post("/sandboxes/:id/pty/:pid/input", use: input)
        router.post("/sandboxes/:id/pty/:pid/resize", use: resize)
        router.get("/sandboxes/:id/pty/:pid/read", use: read)
        router.delete("/sandboxes/:id/pty/:pid", use: kill)
        return router
    }

    struct SizeBody: Decodable {
        var cols: Int?
        var rows: Int?
        var user: String?
        var cwd: String?
    }

    static func size(_ body: SizeBody) throws -> PTYSize {
        let cols = body.cols ?? 80
        let rows = body.rows ?? 24
        guard (1...1000).contains(cols), (1...1000).contains(rows) else {
            throw OmniRunError(.invalidArgument, "cols and rows must be between 1 and 1000")
        }
        return PTYSize(cols: cols, rows: rows)
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(SizeBody.self, from: request, limit: 64 << 10)
        let size = try Self.size(body)
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: account)
        let sessions = self.sessions
        // The session is the host's before the guest says anything: output goes to it by
        // this token, never by the pid the agent reports.
        let token = try await sessions.reserve(sandbox.id, startedAt: nowMillis())
        let pid: Int32
        do {
            pid = try await sandbox.start(
                ProcessStartRequest(
                    argv: ["/bin/bash", "-l"], env: ["TERM": "xterm-256color"], cwd: body.cwd,
                    user: try CommandController.user(body.user), pty: size)
            ) { event in
                switch event.type {
                case .start: try await sessions.bind(token, pid: event.pid)
                case .pty, .stdout, .stderr: await sessions.append(token, event.bytes ?? [])
                case .end: await sessions.ended(token, exitCode: event.exitCode)
                case .truncated: break
                }
            }.pid
        } catch {
            await sessions.release(token)
            throw error
        }
        return JSON.response(["pid": pid])
    }

    struct SessionView: Encodable {
        var pid: Int32
        var running: Bool
        var startedAt: String
        var exitCode: Int32?
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        let views = await sessions.list(sandbox.id).compactMap { session in
            session.pid.map { SessionView(pid: $0, running: session.running, startedAt: isoDate(session.startedAt), exitCode: session.exitCode) }
        }
        return JSON.response(views)
    }

    private func session(_ context: AppRequestContext) async throws -> (Sandbox, Int32) {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        let pid = try CommandController.pid(context)
        guard await sessions.exists(sandbox.id, pid: pid) else { throw OmniRunError(.notFound, "no terminal with pid \(pid)") }
        return (sandbox, pid)
    }

    struct InputBody: Decodable {
        var data: String?
    }

    @Sendable func input(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(InputBody.self, from: request, limit: configuration.maxJSONBody)
        let (sandbox, pid) = try await session(context)
        guard let data = body.data else { throw OmniRunError(.invalidArgument, "data is required") }
        try await sandbox.process(pid: pid).write(Array(data.utf8))
        return JSON.response(["status": "ok"])
    }

    @Sendable func resize(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(SizeBody.self, from: request, limit: 64 << 10)
        let (sandbox, pid) = try await session(context)
        try await sandbox.process(pid: pid).resize(to: try Self.size(body))
        return JSON.response(["status": "ok"])
    }

    @Sendable func read(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (sandbox, pid) = try await session(context)
        let text = try await sessions.drain(sandbox.id, pid: pid)
        return JSON.response(["data": text])
    }

    @Sendable func kill(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (sandbox, pid) = try await session(context)
        try? await sandbox.process(pid: pid).kill(signal: 9)
        await sessions.remove(sandbox.id, pid: pid)
        return JSON.noContent()
    }
}
