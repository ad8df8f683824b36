import AgentProtocol
import Foundation
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunError
import SandboxRuntime

/// Commands (wire protocol §5) and one-shot code (§4.7).
struct CommandController {
    let service: SandboxService
    let configuration: ServerConfiguration

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/sandboxes/:id/commands", use: run)
        router.get("/sandboxes/:id/commands", use: list)
        router.get("/sandboxes/:id/commands/:pid", use: info)
        router.delete("/sandboxes/:id/commands/:pid", use: kill)
        router.post("/sandboxes/:id/commands/:pid/stdin", use: stdin)
        router.get("/sandboxes/:id/commands/:pid/stream", use: stream)
        router.post("/sandboxes/:id/code", use: code)
        return router
    }

    struct RunBody: Decodable {
        var command: String?
        var timeout: Int64?
        var cwd: String?
        var envs: [String: String]?
        var user: String?
        var background: Bool?
    }

    struct RunResult: Encodable {
        var stdout: String
        var stderr: String
        var exit_code: Int32
    }

    /// How long past a command's own timeout the host waits for the agent to report its end.
    static let hostGrace: Duration = .seconds(30)

    static func pid(_ context: AppRequestContext) throws -> Int32 {
        guard let pid = Int32(try context.parameters.require("pid")), pid > 0 else {
            throw OmniRunError(.invalidArgument, "pid must be a positive integer")
        }
        return pid
    }

    static func user(_ name: String?) throws -> String? {
        guard let name, !name.isEmpty else { return nil }
        guard name.count <= 32, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." }) else {
            throw OmniRunError(.invalidArgument, "invalid user name")
        }
        return name
    }

    @Sendable func run(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(RunBody.self, from: request, limit: configuration.maxJSONBody)
        guard let command = body.command, !command.isEmpty else {
            throw OmniRunError(.invalidArgument, "command is required")
        }
        guard !command.utf8.contains(0) else { throw OmniRunError(.invalidArgument, "command contains a NUL byte") }
        // A foreground command without `timeout` gets the SDK's 60 s; a background one runs
        // until it exits or the sandbox ends (a long-running worker is started that way).
        let timeout = body.timeout ?? (body.background == true ? 0 : 60)
        guard timeout >= 0, timeout <= configuration.maxCommandTimeoutSeconds else {
            throw OmniRunError(.invalidArgument, "timeout must be between 0 and \(configuration.maxCommandTimeoutSeconds) seconds")
        }
        for key in (body.envs ?? [:]).keys where !CreateSandboxRequest.isEnvName(key) {
            throw OmniRunError(.invalidArgument, "invalid environment variable name '\(key)'")
        }
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: account)
        let start = ProcessStartRequest(
            shell: command, env: body.envs ?? [:], cwd: body.cwd, user: try Self.user(body.user),
            timeoutMillis: timeout > 0 ? timeout * 1000 : nil, stdin: body.background == true)
        service.metrics.increment("omnirun_commands_total{kind=\"\(body.background == true ? "background" : "foreground")\"}")
        if body.background == true {
            let process = try await sandbox.start(start)
            return JSON.response(["pid": process.pid])
        }
        // The agent ends the process at its timeout; the host stops waiting a little later
        // whatever the guest does (a stalled or lying agent gets a 504, not a hung request).
        let result = try await sandbox.exec(start, hostTimeout: timeout > 0 ? .seconds(timeout) + Self.hostGrace : nil)
        await service.touch(sandbox.id)
        var stderr = result.stderrText
        if result.outcome == .timedOut {
            stderr += (stderr.isEmpty || stderr.hasSuffix("\n") ? "" : "\n") + "command timed out after \(timeout) s\n"
        }
        return JSON.response(RunResult(stdout: result.stdoutText, stderr: stderr, exit_code: result.exitCode))
    }

    struct ProcessView: Encodable {
        var pid: Int32
        var command: String
        var running: Bool
        var exit_code: Int32?
        var stdout: String?
        var stderr: String?
        var started_at: String
        var ended_at: String?
        var tag: String?
        var user: String
        var cwd: String

        init(_ info: GuestProcessInfo, stdout: String? = nil, stderr: String? = nil) {
            pid = info.pid
            command = info.command
            running = info.running
            exit_code = info.exitCode
            self.stdout = stdout
            self.stderr = stderr
            started_at = isoDate(info.startedAtMillis)
            ended_at = info.endedAtMillis.map(isoDate)
            tag = info.tag
            user = info.user
            cwd = info.cwd
        }
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        let processes = try await sandbox.processes(includeFinished: true)
        return JSON.response(processes.filter { !$0.pty }.map { ProcessView($0) })
    }

    @Sendable func info(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        let output = try await sandbox.process(pid: try Self.pid(context)).output()
        let stdout = Data(base64Encoded: output.stdout).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let stderr = Data(base64Encoded: output.stderr).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return JSON.response(ProcessView(output.info, stdout: stdout, stderr: stderr))
    }

    @Sendable func kill(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        try await sandbox.process(pid: try Self.pid(context)).kill(signal: 9)
        return JSON.noContent()
    }

    struct StdinBody: Decodable {
        var data: String?
        var eof: Bool?
    }

    @Sendable func stdin(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(StdinBody.self, from: request, limit: configuration.maxJSONBody)
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: account)
        try await sandbox.process(pid: try Self.pid(context)).write(body.data.map { Array($0.utf8) }, close: body.eof ?? false)
        return JSON.response(["status": "ok"])
    }

    struct StreamEvent: Encodable {
        var type: String
        var data: String?
        var exit_code: Int32?
        var timestamp: String?
    }

    @Sendable func stream(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        let process = sandbox.process(pid: try Self.pid(context))
        // Fail before the stream starts if the pid is unknown (the SDK reads a non-2xx as StreamError).
        _ = try await process.output()
        let service = self.service
        return SSE.response { send in
            let carries = CarryPair()
            try await process.attach(replay: true) { event in
                await service.touch(sandbox.id)
                switch event.type {
                case .stdout, .pty:
                    let text = await carries.stdout(event.bytes ?? [])
                    if !text.isEmpty { try await send(SSE.line(StreamEvent(type: "stdout", data: text))) }
                case .stderr:
                    let text = await carries.stderr(event.bytes ?? [])
                    if !text.isEmpty { try await send(SSE.line(StreamEvent(type: "stderr", data: text))) }
                case .end:
                    let (out, err) = await carries.flush()
                    if !out.isEmpty { try await send(SSE.line(StreamEvent(type: "stdout", data: out))) }
                    if !err.isEmpty { try await send(SSE.line(StreamEvent(type: "stderr", data: err))) }
                    let exitCode = ProcessOutcome(ending: event)?.exitCode ?? -1
                    try await send(
                        SSE.line(StreamEvent(type: "exit", exit_code: exitCode, timestamp: event.timestampMillis.map(isoDate))))
                case .start, .truncated:
                    break
                }
            }
        }
    }

    actor CarryPair {
        var out = UTF8Carry()
        var err = UTF8Carry()
        func stdout(_ bytes: [UInt8]) -> String { out.text(bytes) }
        func stderr(_ bytes: [UInt8]) -> String { err.text(bytes) }
        func flush() -> (String, String) { (out.flush(), err.flush()) }
    }

    struct CodeBody: Decodable {
        var code: String?
        var language: String?
        var timeout: Int64?
    }

    static let interpreters: [String: (file: String, command: String)] = [
        "python": ("code.py", "python3"), "python3": ("code.py", "python3"),
        "javascript": ("code.js", "node"), "js": ("code.js", "node"), "node": ("code.js", "node"),
        "bash": ("code.sh", "bash"), "sh": ("code.sh", "sh"),
    ]

    @Sendable func code(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(CodeBody.self, from: request, limit: configuration.maxJSONBody)
        guard let code = body.code else { throw OmniRunError(.invalidArgument, "code is required") }
        let language = (body.language ?? "python").lowercased()
        guard let interpreter = Self.interpreters[language] else {
            throw OmniRunError(
                .invalidArgument,
                "unsupported language '\(language)' (supported: \(Self.interpreters.keys.sorted().joined(separator: ", ")))")
        }
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: account)
        let directory = "/tmp/.omnirun-code-\(randomID("", bytes: 6))"
        let path = "\(directory)/\(interpreter.file)"
        _ = try await sandbox.writeFile(path: path, bytes: Array(code.utf8))
        let timeout = min(max(body.timeout ?? 60, 1), configuration.maxCommandTimeoutSeconds)
        service.metrics.increment("omnirun_commands_total{kind=\"code\"}")
        let result = try await sandbox.exec(
            ProcessStartRequest(argv: [interpreter.command, path], timeoutMillis: timeout * 1000),
            hostTimeout: .seconds(timeout) + Self.hostGrace)
        try? await sandbox.removeFile(path: directory)
        return JSON.response(RunResult(stdout: result.stdoutText, stderr: result.stderrText, exit_code: result.exitCode))
    }
}
