import AgentProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import OmniRunError

/// How one operation travels: a stream opened, the request sent, the answer read
/// with bounds and a deadline.
extension GuestAgentClient {

    func userQuery(_ user: String?) -> [(String, String)] {
        user.map { [("user", $0)] } ?? []
    }

    func json<Reply: Decodable & Sendable>(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], timeout: Duration = defaultTimeout,
        limit: Int = maxSmallReplyBytes
    ) async throws -> Reply {
        try await exchange(method, path, query: query, timeout: timeout, writeBody: { try await $0.write(.end(nil)) }) {
            head, body in
            try await self.checkStatus(head, &body)
            return try await self.decodeBody(Reply.self, &body, limit: limit)
        }
    }

    func json<Request: Encodable & Sendable, Reply: Decodable & Sendable>(
        _ method: HTTPMethod, _ path: String, body request: Request, timeout: Duration = defaultTimeout,
        limit: Int = maxSmallReplyBytes
    ) async throws -> Reply {
        let bytes = try JSONEncoder().encode(request)
        return try await exchange(
            method, path, query: [], timeout: timeout,
            writeBody: { writer in
                try await writer.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
                try await writer.write(.end(nil))
            }
        ) { head, body in
            try await self.checkStatus(head, &body)
            return try await self.decodeBody(Reply.self, &body, limit: limit)
        }
    }

    func events<Request: Encodable & Sendable>(
        _ path: String, body request: Request, timeout: Duration? = nil,
        onEvent: @escaping @Sendable (ProcessEvent) async throws -> Void
    ) async throws {
        let bytes = try JSONEncoder().encode(request)
        try await exchange(
            .POST, path, query: [], timeout: timeout,
            writeBody: { writer in
                try await writer.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
                try await writer.write(.end(nil))
            }
        ) { head, body in
            try await self.checkStatus(head, &body)
            try await self.forEachLine(&body) { line in
                let event = try self.decode(ProcessEvent.self, line)
                try await onEvent(event)
            }
        }
    }

    func forEachLine(
        _ body: inout ResponseBody, limit: Int = maxEventLineBytes, _ handle: ([UInt8]) async throws -> Void
    ) async throws {
        var pending: [UInt8] = []
        while let chunk = try await body.next() {
            // Only the new bytes are searched: a long line arriving in small pieces costs
            // its length once, not once per piece.
            var scanned = pending.count
            pending.append(contentsOf: chunk.readableBytesView)
            var start = 0
            while let newline = pending[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                try await handle(Array(pending[start..<newline]))
                start = newline + 1
                scanned = start
            }
            pending.removeFirst(start)
            if pending.count > limit {
                throw OmniRunError(.payloadTooLarge, "the agent of \(name) sent an event line over \(limit) bytes")
            }
        }
        if !pending.isEmpty { try await handle(pending) }
    }

    func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        guard JSONNesting.depth(of: bytes) <= JSONNesting.maxDepth else {
            throw violation("sent a \(type) nested deeper than \(JSONNesting.maxDepth) levels")
        }
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw violation("sent a malformed \(type): \(String("\(error)".prefix(300)))")
        }
    }

    func decodeBody<T: Decodable>(_ type: T.Type, _ body: inout ResponseBody, limit: Int = maxJSONBytes) async throws -> T {
        try decode(type, try await body.collect(limit: limit, name: name))
    }

    /// An answer no honest agent sends: the error to throw. `exchange` reports it to the
    /// sandbox's runtime (`onProtocolViolation`), which ends the sandbox as failed.
    func violation(_ what: String) -> OmniRunError {
        OmniRunError(.protocolViolation, "the agent of \(name) \(what)")
    }

    func checkStatus(_ head: HTTPResponseHead, _ body: inout ResponseBody) async throws {
        let status = Int(head.status.code)
        guard !(200..<300).contains(status) else { return }
        let bytes = (try? await body.collect(limit: 64 << 10, name: name)) ?? []
        let error =
            JSONNesting.depth(of: bytes) <= JSONNesting.maxDepth
            ? try? JSONDecoder().decode(AgentErrorBody.self, from: Data(bytes)) : nil
        let code: OmniRunError.Code
        switch error?.code {
        case AgentErrorCode.notFound: code = .notFound
        case AgentErrorCode.invalidArgument: code = status == 413 ? .payloadTooLarge : .invalidArgument
        case AgentErrorCode.conflict, AgentErrorCode.readOnly: code = .conflict
        case AgentErrorCode.permissionDenied: code = .forbidden
        case AgentErrorCode.noSpace: code = .noSpace
        default: code = status == 502 ? .unavailable : .agentError
        }
        let message = error.map { String($0.message.prefix(4096)) }
        throw OmniRunError(code, message ?? "the agent of \(name) answered \(status)")
    }

    /// Opens a stream, sends the request, and hands the response to `readResponse`.
    /// With a timeout, a stuck guest closes the stream and the call fails with
    /// `.timeout`.
    func exchange<Result: Sendable>(
        _ method: HTTPMethod, _ path: String, query: [(String, String)], timeout: Duration?, concurrentBody: Bool = false,
        writeBody: @escaping @Sendable (NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>) async throws -> Void,
        readResponse: (HTTPResponseHead, inout ResponseBody) async throws -> Result
    ) async throws -> Result {
        if path != AgentAPI.Path.initialize, let admitted = startAdmission() {
            try await admitted.value
        }
        guard connection.isActive else {
            if let goAway = connection.violations.goAway, connection.established.withLockedValue({ $0 }) {
                // An agent does not end the one connection its host keeps.
                connection.violations.record(goAway)
                throw OmniRunError(.protocolViolation, goAway)
            }
            throw OmniRunError(.unavailable, "the connection to the agent of \(name) is closed")
        }
        let stream: AgentConnection.Stream
        do {
            stream = try await connection.openStream()
        } catch {
            throw OmniRunError(.unavailable, "cannot open a stream to the agent of \(name): \(error)")
        }
        let timedOut = NIOLockedValueBox(false)
        let scheduled = timeout.map { limit in
            stream.channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(limit.components.seconds) * 1_000_000_000 + limit.components.attoseconds / 1_000_000_000)) {
                timedOut.withLockedValue { $0 = true }
                stream.channel.close(promise: nil)
            }
        }
        defer { scheduled?.cancel() }
        let uri = query.isEmpty ? path : path + "?" + AgentQuery.encode(query)
        let name = self.name
        do {
            return try await stream.executeThenClose { inbound, outbound in
                var headers = HTTPHeaders()
                headers.add(name: "host", value: "agent")
                headers.add(name: AgentAPI.versionHeader, value: "\(AgentAPI.version)")
                if method == .PUT || method == .POST { headers.add(name: "content-type", value: "application/octet-stream") }
                try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)))
                var body = ResponseBody(iterator: inbound.makeAsyncIterator())
                if concurrentBody {
                    let writer = Task { try await writeBody(outbound) }
                    stream.channel.closeFuture.whenComplete { _ in writer.cancel() }
                    let head = try await body.head(name: name)
                    let result = try await readResponse(head, &body)
                    writer.cancel()
                    return result
                }
                try await writeBody(outbound)
                let head = try await body.head(name: name)
                return try await readResponse(head, &body)
            }
        } catch let error as OmniRunError {
            if error.code == .protocolViolation { connection.violations.record(error.message) }
            // The stream ended because the connection broke: say why.
            if error.code == .unavailable, let broken = connection.violations.error { throw OmniRunError(.protocolViolation, broken) }
            if timedOut.withLockedValue({ $0 }) { throw timeoutError(timeout) }
            throw error
        } catch {
            if let broken = connection.violations.error { throw OmniRunError(.protocolViolation, broken) }
            if timedOut.withLockedValue({ $0 }) { throw timeoutError(timeout) }
            if error is CancellationError { throw error }
            throw OmniRunError(.unavailable, "the agent of \(name) went away during \(method) \(path): \(error)")
        }
    }

    func timeoutError(_ timeout: Duration?) -> OmniRunError {
        OmniRunError(.timeout, "the agent of \(name) did not answer within \(timeout.map { "\($0)" } ?? "the time allowed")")
    }
}

struct EmptyReply: Codable, Sendable {}

/// The body of one response, read chunk by chunk.
struct ResponseBody {
    var iterator: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    private var ended = false

    init(iterator: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator) {
        self.iterator = iterator
    }

    mutating func head(name: String) async throws -> HTTPResponseHead {
        while let part = try await iterator.next() {
            if case .head(let head) = part {
                if head.status == .continue { continue }
                return head
            }
        }
        throw OmniRunError(.unavailable, "the agent of \(name) closed the stream without answering")
    }

    mutating func next() async throws -> ByteBuffer? {
        guard !ended else { return nil }
        while let part = try await iterator.next() {
            switch part {
            case .head: continue
            case .body(let buffer): return buffer
            case .end:
                ended = true
                return nil
            }
        }
        ended = true
        return nil
    }

    mutating func collect(limit: Int, name: String) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await next() {
            bytes.append(contentsOf: chunk.readableBytesView)
            if bytes.count > limit {
                throw OmniRunError(.payloadTooLarge, "the agent of \(name) sent more than \(limit) bytes")
            }
        }
        return bytes
    }
}

extension Array where Element: Sendable {
    /// An async sequence over the elements (for small in-memory bodies).
    public var asyncSequence: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}

/// How deeply a JSON text nests arrays and objects, counted without parsing it. A
/// decoder recurses once per level: the agent's answers are refused past `maxDepth`
/// before any decoder sees them (our shapes nest a handful of levels; a context's rich
/// result a few dozen at most).
enum JSONNesting {
    static let maxDepth = 128

    /// The deepest nesting (stops counting once past `maxDepth`).
    static func depth(of bytes: [UInt8]) -> Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > deepest {
                    deepest = depth
                    if deepest > maxDepth { return deepest }
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
            default: break
            }
        }
        return deepest
    }
}
