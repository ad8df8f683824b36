import AgentProtocol
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import OmniRunControl
import OmniRunError
import SandboxRuntime

/// The code interpreter's routes (`e2b-code-interpreter`, port 49999): `/execute` streams
/// newline-delimited JSON events; `/contexts` creates, lists, restarts and deletes contexts.
/// They are served by OmniRun's code contexts (Jupyter kernels in the guest).
struct E2BInterpreter {
    let access: E2BAccess
    let defaults: E2BDefaultContexts
    let configuration: ServerConfiguration

    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/execute", use: execute)
        router.post("/contexts", use: create)
        router.get("/contexts", use: list)
        router.delete("/contexts/:ctx", use: delete)
        router.post("/contexts/:ctx/restart", use: restart)
        return router
    }

    struct ExecuteBody: Decodable {
        var code: String?
        var context_id: String?
        var language: String?
        var env_vars: [String: String]?
    }

    /// One line of `/execute`'s answer.
    struct Line: Encodable {
        var type: String
        var text: String?
        var timestamp: Int64?
        var name: String?
        var value: String?
        var traceback: String?
        var execution_count: Int?
    }

    /// A result line: the MIME bundle's keys (`text`, `png`, …) beside `type` and `is_main_result`.
    struct ResultLine: Encodable {
        var bundle: [String: JSONValue]
        var isMain: Bool

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            for (key, value) in bundle where key != "type" && key != "is_main_result" {
                try container.encode(value, forKey: Key(key))
            }
            try container.encode("result", forKey: Key("type"))
            try container.encode(isMain, forKey: Key("is_main_result"))
        }

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(_ string: String) { stringValue = string }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
    }

    static func line<T: Encodable>(_ value: T) -> ByteBuffer {
        var buffer = ByteBuffer(bytes: (try? ConnectRPC.encoder.encode(value)) ?? Data("{}".utf8))
        buffer.writeString("\n")
        return buffer
    }

    /// How long one execution may run here (the SDK's own deadline is usually shorter).
    var executeTimeout: Int64 { min(3600, configuration.maxCommandTimeoutSeconds) }

    @Sendable func execute(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(ExecuteBody.self, from: request, limit: configuration.maxJSONBody)
        guard let code = body.code else { throw OmniRunError(.invalidArgument, "code is required") }
        if let envs = body.env_vars, !envs.isEmpty {
            throw OmniRunError(
                .notImplemented, "env_vars on run_code are not supported; set them at Sandbox.create(envs=...) or in the code")
        }
        let sandbox = try await access.sandbox(request, context: context)
        let contextID: String
        if let id = body.context_id, !id.isEmpty {
            contextID = try Self.checkContextID(id)
        } else {
            let language = try ContextController.language(body.language)
            contextID = try await defaults.context(for: sandbox, language: language)
        }
        // An unknown context is a 404 before the stream starts (the SDK reads it as NotFoundException).
        let known = try await sandbox.contextRequest(ContextRequest(op: "list"), timeout: ContextController.kernelStartAllowance)
        guard known.contexts?.contains(where: { $0.id == contextID }) == true else {
            throw OmniRunError(.notFound, "no context \(contextID)")
        }
        let execute = ContextRequest(op: "execute", id: contextID, code: code, timeoutMillis: executeTimeout * 1000)
        let service = access.service
        let timeout = executeTimeout
        access.service.metrics.increment("omnirun_commands_total{kind=\"e2b-execute\"}")
        let stream = ResponseBody { writer in
            let bridge = StreamBridge<ByteBuffer>(capacity: 16)
            let producer = Task {
                do {
                    let done = NIOLockedValueBox(false)
                    try await sandbox.contextEvents(execute, timeout: .seconds(timeout) + ContextController.kernelStartAllowance) { event in
                        await service.touch(sandbox.id)
                        for line in Self.lines(for: event) { try await bridge.send(line) }
                        if event.type == "done" { done.withLockedValue { $0 = true } }
                    }
                    if !done.withLockedValue({ $0 }) { throw ContextController.Collected.endedEarly }
                } catch {
                    let message = APIError.normalize(error).message
                    try? await bridge.send(Self.line(Line(type: "error", name: "OmniRunError", value: message, traceback: message)))
                    try? await bridge.send(Self.line(Line(type: "unexpected_end_of_execution")))
                }
                await bridge.finish()
            }
            defer { producer.cancel() }
            while let buffer = try await bridge.next() { try await writer.write(buffer) }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: stream)
    }

    /// The lines one context event becomes (never a blank one: the SDK parses every line).
    static func lines(for event: ContextEvent) -> [ByteBuffer] {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000) * 1000
        switch event.type {
        case "stdout", "stderr":
            guard let text = event.data?.stringValue, !text.isEmpty else { return [] }
            return [line(Line(type: event.type, text: text, timestamp: now))]
        case "result":
            guard case .object(let bundle) = event.data else { return [] }
            return [line(ResultLine(bundle: bundle, isMain: event.isMainResult ?? false))]
        case "error":
            return [line(Line(type: "error", name: event.name ?? "", value: event.value ?? "", traceback: event.traceback ?? ""))]
        case "done":
            return [
                line(Line(type: "number_of_executions", execution_count: event.executionCount ?? 0)),
                line(Line(type: "end_of_execution")),
            ]
        default:
            return []
        }
    }

    static func checkContextID(_ id: String) throws -> String {
        guard id.count == 20, id.hasPrefix("ctx_"), id.dropFirst(4).allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw OmniRunError(.notFound, "no context \(id.prefix(64))")
        }
        return id
    }

    struct ContextView: Encodable {
        var id: String
        var language: String
        var cwd: String

        init(_ info: ContextInfo) {
            id = info.id
            language = info.language
            cwd = info.cwd
        }
    }

    struct CreateBody: Decodable {
        var language: String?
        var cwd: String?
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(CreateBody.self, from: request, limit: 64 << 10)
        let language = try ContextController.language(body.language)
        let cwd = body.cwd.flatMap { $0.isEmpty ? nil : $0 }
        if let cwd {
            guard cwd.hasPrefix("/"), cwd.utf8.count <= 4096, !cwd.contains("\0") else {
                throw OmniRunError(.invalidArgument, "cwd must be an absolute path")
            }
        }
        let sandbox = try await access.sandbox(request, context: context)
        let event = try await sandbox.contextRequest(
            ContextRequest(op: "create", language: language, cwd: cwd), timeout: ContextController.kernelStartAllowance)
        guard let info = event.context else { throw OmniRunError(.protocolViolation, "the contexts service answered no context") }
        return JSON.response(ContextView(info))
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await access.sandbox(request, context: context)
        let event = try await sandbox.contextRequest(ContextRequest(op: "list"), timeout: ContextController.kernelStartAllowance)
        return JSON.response((event.contexts ?? []).map(ContextView.init))
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try Self.checkContextID(try context.parameters.require("ctx"))
        let sandbox = try await access.sandbox(request, context: context)
        _ = try await sandbox.contextRequest(ContextRequest(op: "delete", id: id))
        return Response(status: .noContent)
    }

    @Sendable func restart(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try Self.checkContextID(try context.parameters.require("ctx"))
        let sandbox = try await access.sandbox(request, context: context)
        _ = try await sandbox.contextRequest(ContextRequest(op: "restart", id: id), timeout: ContextController.kernelStartAllowance)
        return Response(status: .noContent)
    }
}

/// The context `run_code` uses when it names none: one per sandbox and language, made on
/// first use and made again if it is gone. At most `limit` are remembered (the oldest are
/// forgotten; a forgotten sandbox just gets a new one).
actor E2BDefaultContexts {
    static let limit = 10_000
    private var contexts: [String: String] = [:]
    private var order: [String] = []

    func context(for sandbox: Sandbox, language: String) async throws -> String {
        let key = "\(sandbox.id)/\(language)"
        let listed = try await sandbox.contextRequest(ContextRequest(op: "list"), timeout: ContextController.kernelStartAllowance)
        if let id = contexts[key], listed.contexts?.contains(where: { $0.id == id }) == true { return id }
        let event = try await sandbox.contextRequest(
            ContextRequest(op: "create", language: language), timeout: ContextController.kernelStartAllowance)
        guard let info = event.context else { throw OmniRunError(.protocolViolation, "the contexts service answered no context") }
        if contexts[key] == nil { order.append(key) }
        contexts[key] = info.id
        while order.count > Self.limit { contexts[order.removeFirst()] = nil }
        return info.id
    }
}
