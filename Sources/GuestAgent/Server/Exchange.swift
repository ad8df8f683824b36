import AgentProtocol
import NIOCore
import NIOHTTP1

/// One request/response on one HTTP/2 stream, seen through the HTTP/1 codec.
struct Exchange {
    let head: HTTPRequestHead
    let path: String
    let query: [String: String]
    let outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    let channel: any Channel
    var iterator: NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator
    private(set) var bodyFinished = false
    private(set) var responded = false

    init(
        head: HTTPRequestHead, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, channel: any Channel,
        iterator: NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator
    ) {
        self.head = head
        (self.path, self.query) = AgentQuery.parse(head.uri)
        self.outbound = outbound
        self.channel = channel
        self.iterator = iterator
    }

    /// The next chunk of the request body, or nil at its end.
    mutating func nextBodyChunk() async throws -> ByteBuffer? {
        guard !bodyFinished else { return nil }
        while let part = try await iterator.next() {
            switch part {
            case .head: continue
            case .body(let buffer): return buffer
            case .end:
                bodyFinished = true
                return nil
            }
        }
        bodyFinished = true
        return nil
    }

    mutating func readBody(limit: Int = 4 << 20) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await nextBodyChunk() {
            bytes.append(contentsOf: chunk.readableBytesView)
            if bytes.count > limit { throw AgentFailure(status: 413, code: AgentErrorCode.invalidArgument, message: "request body too large") }
        }
        return bytes
    }

    mutating func decode<T: Decodable>(_ type: T.Type) async throws -> T {
        try AgentCoding.decode(type, from: try await readBody())
    }

    mutating func drainBody() async {
        while (try? await nextBodyChunk()) != nil {}
    }

    func param(_ name: String) throws -> String {
        guard let value = query[name], !value.isEmpty else { throw AgentFailure.badRequest("query parameter '\(name)' is required") }
        return value
    }

    mutating func writeHead(status: Int, contentType: String?, extra: [(String, String)] = []) async throws {
        var headers = HTTPHeaders()
        if let contentType { headers.add(name: "content-type", value: contentType) }
        headers.add(name: AgentAPI.versionHeader, value: "\(AgentAPI.version)")
        for (name, value) in extra { headers.add(name: name, value: value) }
        responded = true
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)))
    }

    func writeBody(_ buffer: ByteBuffer) async throws {
        try await outbound.write(.body(.byteBuffer(buffer)))
    }

    func writeBody(_ bytes: [UInt8]) async throws {
        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
    }

    func end() async throws {
        try await outbound.write(.end(nil))
    }

    /// Head, body and end go out in one write (one hop to the event loop, one flush).
    mutating func respond<T: Encodable>(_ value: T, status: Int = 200) async throws {
        let bytes = try AgentCoding.encode(value)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: "\(bytes.count)")
        headers.add(name: AgentAPI.versionHeader, value: "\(AgentAPI.version)")
        responded = true
        try await outbound.write(contentsOf: [
            .head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)),
            .body(.byteBuffer(ByteBuffer(bytes: bytes))), .end(nil),
        ])
    }

    mutating func respondEmpty() async throws {
        try await respond(EmptyBody())
    }

    mutating func fail(_ failure: AgentFailure) async throws {
        guard !responded else {
            // The head is out: all that is left is to cut the stream short.
            channel.close(promise: nil)
            return
        }
        try await respond(AgentErrorBody(code: failure.code, message: failure.message), status: failure.status)
    }
}

struct EmptyBody: Codable, Sendable {}

/// Writes an event stream (one JSON object per line) until the events end or the
/// peer goes away.
func streamLines<Event: Encodable & Sendable>(
    _ events: AsyncStream<Event>, to exchange: inout Exchange
) async throws {
    try await exchange.writeHead(status: 200, contentType: AgentAPI.eventStreamContentType)
    let outbound = exchange.outbound
    let task = Task {
        for await event in events {
            var line = try AgentCoding.encode(event)
            line.append(UInt8(ascii: "\n"))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: line))))
        }
    }
    exchange.channel.closeFuture.whenComplete { _ in task.cancel() }
    try await task.value
    try await exchange.end()
}
