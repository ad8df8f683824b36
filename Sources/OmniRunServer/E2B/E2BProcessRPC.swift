import AgentProtocol
import Foundation
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunError
import SandboxRuntime

/// envd's `process.Process` service (Connect, JSON) over the sandbox's agent: commands and
/// terminals started, followed, fed, resized and signalled by pid. No envd runs in the guest.
struct E2BProcessRPC {
    let access: E2BAccess
    let configuration: ServerConfiguration

    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/process.Process/Start", use: start)
        router.post("/process.Process/Connect", use: connect)
        router.post("/process.Process/List", use: list)
        router.post("/process.Process/SendInput", use: sendInput)
        router.post("/process.Process/StreamInput", use: streamInput)
        router.post("/process.Process/SendSignal", use: sendSignal)
        router.post("/process.Process/CloseStdin", use: closeStdin)
        router.post("/process.Process/Update", use: update)
        return router
    }

    /// The largest input one SendInput or StreamInput message carries.
    static let maxInput = 1 << 20

    // MARK: Messages out

    struct Empty: Codable {}

    struct Event: Encodable {
        struct Start: Encodable { var pid: UInt32 }
        struct Output: Encodable {
            var stdout: String?
            var stderr: String?
            var pty: String?
        }
        struct End: Encodable {
            var exitCode: Int32
            var exited: Bool
            var status: String
            var error: String?
        }
        var start: Start?
        var data: Output?
        var end: End?
        var keepalive: Empty?
    }

    struct StreamMessage: Encodable { var event: Event }

    /// One agent event as envd's `ProcessEvent` (nil for events envd has no word for). The
    /// bytes are decoded and encoded again, so what leaves is always valid base64.
    static func message(for event: ProcessEvent) -> StreamMessage? {
        switch event.type {
        case .stdout, .stderr, .pty:
            let text = Data(event.bytes ?? []).base64EncodedString()
            guard !text.isEmpty else { return nil }
            let output =
                switch event.type {
                case .stdout: Event.Output(stdout: text)
                case .stderr: Event.Output(stderr: text)
                default: Event.Output(pty: text)
                }
            return StreamMessage(event: Event(data: output))
        case .end:
            let outcome = ProcessOutcome(ending: event) ?? .exited(code: -1)
            let end: Event.End
            switch outcome {
            case .exited(let code):
                end = .init(exitCode: code, exited: true, status: "exit status \(code)")
            case .killed(let signal, _):
                // As envd reports a process a signal ended: no exit code of its own (-1).
                end = .init(exitCode: -1, exited: false, status: "signal: \(signalName(signal))")
            case .timedOut:
                end = .init(exitCode: ProcessOutcome.timeoutExitCode, exited: false, status: "signal: killed", error: "timeout")
            }
            return StreamMessage(event: Event(end: end))
        case .start, .truncated:
            return nil
        }
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case 9: "killed"
        case 15: "terminated"
        case 2: "interrupt"
        case 1: "hangup"
        default: "signal \(signal)"
        }
    }

    // MARK: Requests in

    /// The user an RPC runs as: `Authorization: Basic base64("<name>:")`; none is the default user.
    static func user(_ request: Request) throws -> String? {
        guard let header = request.headers[.authorization], !header.isEmpty else { return nil }
        guard header.utf8.count <= 256, header.lowercased().hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces))
        else {
            throw ConnectError(.invalidArgument, "the Authorization header must be Basic with the user name")
        }
        let name = String(decoding: decoded, as: UTF8.self).split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            .first.map(String.init) ?? ""
        return try CommandController.user(name)
    }

    /// A `ProcessSelector`: the pid (the tag is not kept by OmniRun's agent for E2B's calls).
    static func pid(_ message: ProtoJSON?) throws -> Int32 {
        guard let selector = message else { throw ConnectError(.invalidArgument, "process is required") }
        if selector["tag"] != nil, selector["pid"] == nil {
            throw ConnectError(.unimplemented, "selecting a process by tag is not supported; use its pid")
        }
        guard let pid = selector["pid"] else { throw ConnectError(.invalidArgument, "process.pid is required") }
        return Int32(try pid.integer("process.pid", in: 1...Int64(Int32.max)))
    }

    static func size(_ message: ProtoJSON?) throws -> PTYSize? {
        guard let size = message?["size"] else { return nil }
        let cols = try size["cols"]?.integer("pty.size.cols", in: 1...1000) ?? 80
        let rows = try size["rows"]?.integer("pty.size.rows", in: 1...1000) ?? 24
        return PTYSize(cols: Int(cols), rows: Int(rows))
    }

    static func startRequest(_ message: ProtoJSON, user: String?) throws -> ProcessStartRequest {
        guard let config = message["process"] else { throw ConnectError(.invalidArgument, "process is required") }
        guard let cmd = try config["cmd"]?.string("process.cmd"), !cmd.isEmpty else {
            throw ConnectError(.invalidArgument, "process.cmd is required")
        }
        let args = try config["args"]?.strings("process.args") ?? []
        let envs = try config["envs"]?.stringMap("process.envs") ?? [:]
        for key in envs.keys where !CreateSandboxRequest.isEnvName(key) {
            throw ConnectError(.invalidArgument, "invalid environment variable name '\(key.prefix(64))'")
        }
        let cwd = try config["cwd"]?.string("process.cwd")
        if let cwd, !cwd.isEmpty, !cwd.hasPrefix("/") {
            throw ConnectError(.invalidArgument, "process.cwd must be an absolute path")
        }
        let pty = try size(message["pty"])
        let stdin = try message["stdin"]?.bool("stdin") ?? (pty != nil)
        if message["tag"] != nil { throw ConnectError(.unimplemented, "process tags are not supported") }
        return ProcessStartRequest(
            argv: [cmd] + args, env: envs, cwd: cwd.flatMap { $0.isEmpty ? nil : $0 }, user: user, stdin: stdin, pty: pty)
    }

    // MARK: Calls

    @Sendable func start(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.serverStream(
            request, input: EnvdSchemas.startRequest, output: EnvdSchemas.eventResponse)
        let start = try Self.startRequest(message, user: try Self.user(request))
        let sandbox = try await access.sandbox(request, context: context)
        access.service.metrics.increment("omnirun_commands_total{kind=\"e2b\"}")
        // Started before the answer begins, so that a bad command is an error status.
        let process = try await sandbox.start(start)
        return follow(process, sandbox: sandbox, request: request, call: call, replay: true)
    }

    @Sendable func connect(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.serverStream(
            request, input: EnvdSchemas.selectorRequest, output: EnvdSchemas.eventResponse)
        let pid = try Self.pid(message["process"])
        let sandbox = try await access.sandbox(request, context: context)
        let process = sandbox.process(pid: pid)
        let output = try await process.output()
        guard output.info.running else { throw ConnectError(.notFound, "process \(pid) has ended") }
        return follow(process, sandbox: sandbox, request: request, call: call, replay: false)
    }

    /// The stream of a process: `start{pid}` at once, then its output and its end. The
    /// process outlives the stream: a client that goes away leaves it running.
    func follow(_ process: SandboxProcess, sandbox: Sandbox, request: Request, call: ConnectCall, replay: Bool) -> Response {
        let service = access.service
        return call.stream(request, keepalive: StreamMessage(event: Event(keepalive: Empty()))) { send in
            try await send(call.envelope(StreamMessage(event: Event(start: .init(pid: UInt32(clamping: process.pid))))))
            try await process.attach(replay: replay) { event in
                await service.touch(sandbox.id)
                if let message = Self.message(for: event) { try await send(call.envelope(message)) }
            }
        }
    }

    struct ProcessInfoView: Encodable {
        struct Config: Encodable {
            var cmd: String
            var args: [String]
            var envs: [String: String]
            var cwd: String?
        }
        var config: Config
        var pid: UInt32
        var tag: String?
    }

    struct ListView: Encodable { var processes: [ProcessInfoView] }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, _) = try await ConnectCall.unary(request, input: EnvdSchemas.empty, output: EnvdSchemas.listResponse)
        let sandbox = try await access.sandbox(request, context: context)
        let processes = try await sandbox.processes(includeFinished: false)
        return call.respond(
            ListView(
                processes: processes.filter(\.running).map {
                    ProcessInfoView(
                        config: .init(cmd: $0.command, args: [], envs: [:], cwd: $0.cwd), pid: UInt32(clamping: $0.pid), tag: $0.tag)
                }))
    }

    @Sendable func sendInput(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.sendInputRequest, output: EnvdSchemas.empty)
        let pid = try Self.pid(message["process"])
        let bytes = try Self.input(message["input"])
        let sandbox = try await access.sandbox(request, context: context)
        try await sandbox.process(pid: pid).write(bytes)
        return call.respond(Empty())
    }

    static func input(_ message: ProtoJSON?) throws -> [UInt8] {
        guard let input = message else { throw ConnectError(.invalidArgument, "input is required") }
        guard let data = input["stdin"] ?? input["pty"] else { throw ConnectError(.invalidArgument, "input.stdin or input.pty is required") }
        return try data.bytes("input", limit: maxInput)
    }

    /// The client-streaming `StreamInput`: `start{process}`, then `data{input}` messages (and
    /// keepalives), answered with one empty message once the client's stream ends.
    @Sendable func streamInput(_ request: Request, context: AppRequestContext) async throws -> Response {
        let codec = try ConnectRPC.codec(request, kind: .clientStream)
        let sandbox = try await access.sandbox(request, context: context)
        var reader = ConnectRPC.EnvelopeReader(codec: codec, schema: EnvdSchemas.streamInputRequest)
        var process: SandboxProcess?
        var ended = false
        for try await chunk in request.body {
            for message in try reader.feed(chunk) {
                guard let message else {
                    ended = true
                    continue
                }
                if let start = message["start"] {
                    guard process == nil else { throw ConnectError(.invalidArgument, "start was sent twice") }
                    process = sandbox.process(pid: try Self.pid(start["process"]))
                } else if let data = message["data"] {
                    guard let process else { throw ConnectError(.invalidArgument, "the first message must be start") }
                    try await process.write(try Self.input(data["input"]))
                }
            }
            if ended { break }
        }
        guard reader.isEmpty else { throw ConnectError(.invalidArgument, "the stream ended inside a message") }
        var headers = HTTPFields()
        headers[.contentType] = codec.streamType
        var body = ConnectCall(codec: codec, output: EnvdSchemas.empty).envelope(Empty())
        var end = ConnectRPC.endOfStream(nil)
        body.writeBuffer(&end)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
    }

    @Sendable func sendSignal(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.sendSignalRequest, output: EnvdSchemas.empty)
        let pid = try Self.pid(message["process"])
        let signal: Int32
        switch message["signal"]?.value {
        case .string("SIGNAL_SIGKILL"), .number(9): signal = 9
        case .string("SIGNAL_SIGTERM"), .number(15): signal = 15
        default: throw ConnectError(.invalidArgument, "signal must be SIGNAL_SIGKILL or SIGNAL_SIGTERM")
        }
        let sandbox = try await access.sandbox(request, context: context)
        try await sandbox.process(pid: pid).kill(signal: signal)
        return call.respond(Empty())
    }

    @Sendable func closeStdin(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.selectorRequest, output: EnvdSchemas.empty)
        let pid = try Self.pid(message["process"])
        let sandbox = try await access.sandbox(request, context: context)
        try await sandbox.process(pid: pid).write(nil, close: true)
        return call.respond(Empty())
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.updateRequest, output: EnvdSchemas.empty)
        let pid = try Self.pid(message["process"])
        guard let size = try Self.size(message["pty"]) else { throw ConnectError(.invalidArgument, "pty.size is required") }
        let sandbox = try await access.sandbox(request, context: context)
        try await sandbox.process(pid: pid).resize(to: size)
        return call.respond(Empty())
    }
}
