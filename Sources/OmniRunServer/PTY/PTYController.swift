import AgentClient
import AgentProtocol
import Foundation
import Hummingbird
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// Terminal sessions whose output is buffered on the server until read (wire §7:
/// polling, no WebSocket). Bounded: the oldest output goes first past 4 MiB.
actor PTYSessions {
    struct Session {
        var sandbox: SandboxID
        var pid: Int32
        var output: [UInt8] = []
        var running = true
        var startedAt: Int64
        var exitCode: Int32?
        var carry = UTF8Carry()
    }

    private var sessions: [String: Session] = [:]
    static let maxBuffered = 4 << 20

    private func key(_ sandbox: SandboxID, _ pid: Int32) -> String { "\(sandbox)/\(pid)" }

    func add(_ sandbox: SandboxID, pid: Int32, startedAt: Int64) {
        let k = key(sandbox, pid)
        if sessions[k] == nil { sessions[k] = Session(sandbox: sandbox, pid: pid, startedAt: startedAt) }
    }

    func append(_ sandbox: SandboxID, pid: Int32, _ bytes: [UInt8]) {
        let k = key(sandbox, pid)
        if sessions[k] == nil { sessions[k] = Session(sandbox: sandbox, pid: pid, startedAt: nowMillis()) }
        sessions[k]!.output += bytes
        if sessions[k]!.output.count > Self.maxBuffered {
            sessions[k]!.output.removeFirst(sessions[k]!.output.count - Self.maxBuffered)
        }
    }

    func ended(_ sandbox: SandboxID, pid: Int32, exitCode: Int32?) {
        sessions[key(sandbox, pid)]?.running = false
        sessions[key(sandbox, pid)]?.exitCode = exitCode
    }

    func drain(_ sandbox: SandboxID, pid: Int32) throws -> String {
        let k = key(sandbox, pid)
        guard let session = sessions[k] else { throw OmniRunError(.notFound, "no terminal with pid \(pid)") }
        sessions[k]!.output.removeAll(keepingCapacity: false)
        return sessions[k]!.carry.text(session.output)
    }

    func exists(_ sandbox: SandboxID, pid: Int32) -> Bool { sessions[key(sandbox, pid)] != nil }

    func list(_ sandbox: SandboxID) -> [Session] {
        sessions.values.filter { $0.sandbox == sandbox }.sorted { $0.pid < $1.pid }
    }

    func remove(_ sandbox: SandboxID, pid: Int32) {
        sessions[key(sandbox, pid)] = nil
    }

    func removeAll(_ sandbox: SandboxID) {
        sessions = sessions.filter { $0.value.sandbox != sandbox }
    }
}

/// PTY routes (wire protocol §7).
struct PTYController {
    let service: SandboxService
    let sessions: PTYSessions
    let configuration: ServerConfiguration

    func register(on router: Router<AppRequestContext>) {
        router.post("/sandboxes/:id/pty", use: create)
        router.get("/sandboxes/:id/pty", use: list)
        router.post("/sandboxes/:id/pty/:pid/input", use: input)
        router.post("/sandboxes/:id/pty/:pid/resize", use: resize)
        router.get("/sandboxes/:id/pty/:pid/read", use: read)
        router.delete("/sandboxes/:id/pty/:pid", use: kill)
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
        let id = sandbox.id
        let started = PIDBox()
        let pid = try await sandbox.agent.startDetached(
            ProcessStartRequest(
                argv: ["/bin/bash", "-l"], env: ["TERM": "xterm-256color"], cwd: body.cwd,
                user: try CommandController.user(body.user), pty: size)
        ) { event in
            // Only `start` carries the pid; the output events that follow belong to it.
            if event.type == .start, let pid = event.pid { await started.set(pid) }
            let pid = await started.value
            switch event.type {
            case .start: await sessions.add(id, pid: pid, startedAt: event.timestampMillis ?? nowMillis())
            case .pty, .stdout, .stderr: await sessions.append(id, pid: pid, event.bytes ?? [])
            case .end: await sessions.ended(id, pid: pid, exitCode: event.exitCode)
            case .truncated: break
            }
        }
        await sessions.add(id, pid: pid, startedAt: nowMillis())
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
        let views = await sessions.list(sandbox.id).map {
            SessionView(pid: $0.pid, running: $0.running, startedAt: isoDate($0.startedAt), exitCode: $0.exitCode)
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
        try await sandbox.agent.sendInput(pid: pid, data: Array(data.utf8))
        return JSON.response(["status": "ok"])
    }

    @Sendable func resize(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(SizeBody.self, from: request, limit: 64 << 10)
        let (sandbox, pid) = try await session(context)
        try await sandbox.agent.resize(pid: pid, size: try Self.size(body))
        return JSON.response(["status": "ok"])
    }

    @Sendable func read(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (sandbox, pid) = try await session(context)
        let text = try await sessions.drain(sandbox.id, pid: pid)
        return JSON.response(["data": text])
    }

    @Sendable func kill(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (sandbox, pid) = try await session(context)
        try? await sandbox.agent.signal(pid: pid, signal: 9)
        await sessions.remove(sandbox.id, pid: pid)
        return JSON.noContent()
    }
}

actor PIDBox {
    private(set) var value: Int32 = 0
    func set(_ pid: Int32) { value = pid }
}
