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
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], timeout: Duration = defaultTimeout
    ) async throws -> Reply {
        try await exchange(method, path, query: query, timeout: timeout, writeBody: { try await $0.write(.end(nil)) }) {
            head, body in
            try await self.checkStatus(head, &body)
            return try await self.decodeBody(Reply.self, &body)
        }
    }

    func json<Request: Encodable & Sendable, Reply: Decodable & Sendable>(
        _ method: HTTPMethod, _ path: String, body request: Request, timeout: Duration = defaultTimeout
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
            return try await self.decodeBody(Reply.self, &body)
        }
    }

    func events<Request: Encodable & Sendable>(
        _ path: String, body request: Request, onEvent: @escaping @Sendable (ProcessEvent) async throws -> Void
    ) async throws {
        let bytes = try JSONEncoder().encode(request)
        try await exchange(
            .POST, path, query: [], timeout: nil,
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
            pending.append(contentsOf: chunk.readableBytesView)
            var start = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                try await handle(Array(pending[start..<newline]))
                start = newline + 1
            }
            pending.removeFirst(start)
            if pending.count > limit {
                throw OmniRunError(.protocolViolation, "the agent of \(name) sent an event line over \(limit) bytes")
            }
        }
        if !pending.isEmpty { try await handle(pending) }
    }

    func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw OmniRunError(.protocolViolation, "the agent of \(name) sent a malformed \(type): \(error)")
        }
    }

    func decodeBody<T: Decodable>(_ type: T.Type, _ body: inout ResponseBody) async throws -> T {
        try decode(type, try await body.collect(limit: Self.maxJSONBytes, name: name))
    }

    func checkStatus(_ head: HTTPResponseHead, _ body: inout ResponseBody) async throws {
        let status = Int(head.status.code)
        guard !(200..<300).contains(status) else { return }
        let bytes = (try? await body.collect(limit: 1 << 20, name: name)) ?? []
        let error = try? JSONDecoder().decode(AgentErrorBody.self, from: Data(bytes))
        let code: OmniRunError.Code
        switch error?.code {
        case AgentErrorCode.notFound: code = .notFound
        case AgentErrorCode.invalidArgument: code = status == 413 ? .payloadTooLarge : .invalidArgument
        case AgentErrorCode.conflict, AgentErrorCode.readOnly: code = .conflict
        case AgentErrorCode.permissionDenied: code = .forbidden
        case AgentErrorCode.noSpace: code = .noSpace
        default: code = status == 502 ? .unavailable : .agentError
        }
        throw OmniRunError(code, error?.message ?? "the agent of \(name) answered \(status)")
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
            if timedOut.withLockedValue({ $0 }) { throw timeoutError(timeout) }
            throw error
        } catch {
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
                throw OmniRunError(.protocolViolation, "the agent of \(name) sent more than \(limit) bytes")
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
