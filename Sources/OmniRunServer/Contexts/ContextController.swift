import AgentProtocol
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import OmniRunControl
import OmniRunError
import SandboxRuntime

/// Code contexts (wire protocol §8): stateful interpreters in the sandbox. The guest's
/// contexts service (Jupyter kernels) keeps them; this maps its events to the SDK's shapes.
struct ContextController {
    let service: SandboxService
    let configuration: ServerConfiguration

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/sandboxes/:id/contexts", use: create)
        router.get("/sandboxes/:id/contexts", use: list)
        router.post("/sandboxes/:id/contexts/:ctx/execute", use: execute)
        router.post("/sandboxes/:id/contexts/:ctx/stream-execute", use: streamExecute)
        router.post("/sandboxes/:id/contexts/:ctx/restart", use: restart)
        router.delete("/sandboxes/:id/contexts/:ctx", use: delete)
        return router
    }

    /// Without `timeout` in the body, an execute is interrupted after this many seconds
    /// (the SDK gives up on a non-streaming request after 60 s).
    static let defaultExecuteTimeout: Int64 = 60
    static let defaultStreamTimeout: Int64 = 300
    /// A kernel's start (and a restart) under emulation can take long; the agent call waits this much.
    static let kernelStartAllowance: Duration = .seconds(300)

    struct CreateBody: Decodable {
        var language: String?
        var cwd: String?
    }

    struct ExecuteBody: Decodable {
        var code: String?
        var timeout: Int64?
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(CreateBody.self, from: request, limit: configuration.maxJSONBody)
        let language = try Self.language(body.language)
        if let cwd = body.cwd, !cwd.isEmpty {
            guard cwd.hasPrefix("/"), cwd.utf8.count <= 4096, !cwd.contains("\0") else {
                throw OmniRunError(.invalidArgument, "cwd must be an absolute path")
            }
        }
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: account)
        let cwd = body.cwd.flatMap { $0.isEmpty ? nil : $0 }
        let event = try await sandbox.contextRequest(
            ContextRequest(op: "create", language: language, cwd: cwd), timeout: Self.kernelStartAllowance)
        guard let info = event.context else { throw OmniRunError(.protocolViolation, "the contexts service answered no context") }
        return JSON.response(info)
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        let event = try await sandbox.contextRequest(ContextRequest(op: "list"), timeout: Self.kernelStartAllowance)
        return JSON.response(event.contexts ?? [])
    }

    @Sendable func restart(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        let id = try Self.contextID(context)
        let event = try await sandbox.contextRequest(ContextRequest(op: "restart", id: id), timeout: Self.kernelStartAllowance)
        guard let info = event.context else { throw OmniRunError(.protocolViolation, "the contexts service answered no context") }
        return JSON.response(info)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        let id = try Self.contextID(context)
        _ = try await sandbox.contextRequest(ContextRequest(op: "delete", id: id))
        return JSON.noContent()
    }

    struct ExecutionView: Encodable {
        struct Logs: Encodable {
            var stdout = ""
            var stderr = ""
        }
        var results: [JSONValue] = []
        var logs = Logs()
        var error: String?
        var execution_count = 0
    }

    @Sendable func execute(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (sandbox, execute, timeout) = try await prepareExecute(request, context: context, defaultTimeout: Self.defaultExecuteTimeout)
        let view = Collected(limit: configuration.maxContextOutput)
        try await sandbox.contextEvents(execute, timeout: .seconds(timeout) + Self.kernelStartAllowance) { event in
            try view.add(event)
        }
        await service.touch(sandbox.id)
        return JSON.response(try view.finished())
    }

    struct StreamEvent: Encodable {
        var type: String
        var data: JSONValue?
        var execution_count: Int?
        var name: String?
        var value: String?
        var traceback: String?
    }

    @Sendable func streamExecute(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (sandbox, execute, timeout) = try await prepareExecute(request, context: context, defaultTimeout: Self.defaultStreamTimeout)
        // An unknown context must be a 404 before the stream starts (the SDK reads it as StreamError).
        let known = try await sandbox.contextRequest(ContextRequest(op: "list"), timeout: Self.kernelStartAllowance)
        guard known.contexts?.contains(where: { $0.id == execute.id }) == true else {
            throw OmniRunError(.notFound, "no context \(execute.id ?? "")")
        }
        let service = self.service
        return SSE.response { send in
            do {
                let done = NIOLockedValueBox(false)
                try await sandbox.contextEvents(execute, timeout: .seconds(timeout) + Self.kernelStartAllowance) { event in
                    await service.touch(sandbox.id)
                    switch event.type {
                    case "stdout", "stderr", "result":
                        try await send(SSE.line(StreamEvent(type: event.type, data: event.data)))
                    case "error":
                        // The SDK reads no error event: the traceback goes to stderr too.
                        try await send(SSE.line(StreamEvent(type: "stderr", data: .string(Collected.errorText(event) + "\n"))))
                        try await send(
                            SSE.line(StreamEvent(type: "error", name: event.name, value: event.value, traceback: event.traceback)))
                    case "done":
                        done.withLockedValue { $0 = true }
                        try await send(SSE.line(StreamEvent(type: "done", execution_count: event.executionCount ?? 0)))
                    default:
                        break
                    }
                }
                if !done.withLockedValue({ $0 }) { throw Collected.endedEarly }
            } catch {
                let message = (error as? OmniRunError)?.message ?? "\(error)"
                try await send(SSE.line(StreamEvent(type: "stderr", data: .string("omnirun: \(message)\n"))))
            }
        }
    }

    private func prepareExecute(
        _ request: Request, context: AppRequestContext, defaultTimeout: Int64
    ) async throws -> (Sandbox, ContextRequest, Int64) {
        let account = try context.requireAccount()
        let body = try await JSON.decode(ExecuteBody.self, from: request, limit: configuration.maxJSONBody)
        guard let code = body.code else { throw OmniRunError(.invalidArgument, "code is required") }
        let timeout = body.timeout ?? defaultTimeout
        guard timeout > 0, timeout <= configuration.maxCommandTimeoutSeconds else {
            throw OmniRunError(.invalidArgument, "timeout must be between 1 and \(configuration.maxCommandTimeoutSeconds) seconds")
        }
        let id = try Self.contextID(context)
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: account)
        service.metrics.increment("omnirun_commands_total{kind=\"context\"}")
        return (sandbox, ContextRequest(op: "execute", id: id, code: code, timeoutMillis: timeout * 1000), timeout)
    }

    /// `python` (or `python3`), `javascript` (or `js`, `node`, `nodejs`; in templates with
    /// its kernel, e.g. `javascript`, where the guest says otherwise); anything else is a 400
    /// naming what is supported.
    static let languages = ["python", "javascript"]

    static func language(_ value: String?) throws -> String {
        switch (value ?? "python").lowercased() {
        case "python", "python3": return "python"
        case "javascript", "js", "node", "nodejs": return "javascript"
        default:
            throw OmniRunError(
                .invalidArgument,
                "unsupported context language '\(value?.prefix(40) ?? "")' (supported: \(Self.languages.joined(separator: ", ")))")
        }
    }

    /// Context ids are `ctx_` and 16 hex digits; anything else cannot name one.
    static func contextID(_ context: AppRequestContext) throws -> String {
        let id = try context.parameters.require("ctx")
        guard id.count == 20, id.hasPrefix("ctx_"), id.dropFirst(4).allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw OmniRunError(.notFound, "no context \(id.prefix(64))")
        }
        return id
    }

    /// The events of one execute gathered into the non-streaming answer, at most `limit`
    /// bytes of output, results and errors together (`OMNIRUN_CONTEXT_OUTPUT_LIMIT`, like a
    /// command's output): past it the execute fails with 413 and the host lets go of it
    /// (the code runs on in its context, as a command does; `stream-execute` has no limit).
    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var view = ExecutionView()
        private var collected = 0
        let limit: Int

        init(limit: Int) {
            self.limit = limit
        }

        var value: ExecutionView { lock.withLock { view } }
        var bytes: Int { lock.withLock { collected } }
        private var done = false

        /// The error of an execution whose events ended without `done`: the sandbox's
        /// context service (or its kernel) stopped half-way, and what was collected is not
        /// the execution's answer.
        static var endedEarly: OmniRunError {
            OmniRunError(
                .unavailable,
                "the sandbox's code context service stopped before the execution finished; the context may be gone (list the contexts, or create a new one)")
        }

        /// The answer, once the execution has finished (`done`); otherwise `endedEarly`.
        func finished() throws -> ExecutionView {
            try lock.withLock {
                guard done else { throw Self.endedEarly }
                return view
            }
        }

        func add(_ event: ContextEvent) throws {
            try lock.withLock {
                // One event is at most one line of the agent's answer (32 MiB): no overflow.
                collected += Self.size(of: event)
                guard collected <= limit else {
                    throw OmniRunError(
                        .payloadTooLarge,
                        "the execution's output is larger than \(limit) bytes (POST .../stream-execute streams it instead)")
                }
                switch event.type {
                case "stdout": view.logs.stdout += event.data?.stringValue ?? ""
                case "stderr": view.logs.stderr += event.data?.stringValue ?? ""
                case "result": if let data = event.data { view.results.append(data) }
                case "error":
                    view.error = [event.name, event.value].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
                    view.logs.stderr += Self.errorText(event) + "\n"
                case "done":
                    view.execution_count = event.executionCount ?? 0
                    done = true
                default: break
                }
            }
        }

        /// What an event adds to the answer, in bytes (close to its JSON size).
        static func size(of event: ContextEvent) -> Int {
            let texts = [event.name, event.value, event.traceback].compactMap { $0?.utf8.count }.reduce(0, +)
            return texts + (event.data.map(size(of:)) ?? 0)
        }

        static func size(of value: JSONValue) -> Int {
            switch value {
            case .null, .bool: return 5
            case .number: return 24
            case .string(let text): return text.utf8.count + 2
            case .array(let items): return items.reduce(2) { $0 + size(of: $1) + 1 }
            case .object(let fields): return fields.reduce(2) { $0 + $1.key.utf8.count + 4 + size(of: $1.value) }
            }
        }

        static func errorText(_ event: ContextEvent) -> String {
            if let traceback = event.traceback, !traceback.isEmpty { return traceback }
            return [event.name, event.value].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
        }
    }
}
