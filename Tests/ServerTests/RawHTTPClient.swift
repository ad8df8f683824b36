import Foundation
import NIOCore
import NIOPosix

/// A plain TCP client that speaks HTTP/1.1 by hand, for the preview gateway's tests:
/// any Host header (no DNS), several requests on one connection, and raw bytes after
/// an upgrade.
struct RawHTTPClient {
    typealias Channel = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    struct Response: Sendable {
        var status: Int
        var headers: [(String, String)]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    /// A connection with a read buffer.
    final class Connection: @unchecked Sendable {
        var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
        var buffer = ByteBuffer()
        /// Bytes received in all (for streaming checks).
        var received = 0

        init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
            self.iterator = inbound.makeAsyncIterator()
            self.outbound = outbound
        }

        func send(_ text: String) async throws { try await outbound.write(ByteBuffer(string: text)) }
        func send(_ bytes: [UInt8]) async throws { try await outbound.write(ByteBuffer(bytes: bytes)) }

        /// Reads more bytes into the buffer; false at end of stream.
        func fill() async throws -> Bool {
            guard var chunk = try await iterator.next() else { return false }
            received += chunk.readableBytes
            buffer.writeBuffer(&chunk)
            return true
        }

        func readLine() async throws -> String {
            while true {
                if let end = buffer.readableBytesView.firstRange(of: [13, 10]) {
                    let line = buffer.readString(length: end.lowerBound - buffer.readerIndex)!
                    buffer.moveReaderIndex(forwardBy: 2)
                    return line
                }
                guard try await fill() else { throw RawHTTPError("connection closed in a line") }
            }
        }

        func readBytes(_ count: Int) async throws -> [UInt8] {
            while buffer.readableBytes < count {
                guard try await fill() else { throw RawHTTPError("connection closed after \(buffer.readableBytes) of \(count) bytes") }
            }
            return buffer.readBytes(length: count)!
        }

        /// Reads one response; `consume` gets the body in pieces instead of keeping it.
        func readResponse(head: Bool = false, consume: ((ByteBuffer) -> Void)? = nil) async throws -> Response {
            let statusLine = try await readLine()
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let status = Int(parts[1]) else { throw RawHTTPError("bad status line \(statusLine)") }
            var headers: [(String, String)] = []
            while true {
                let line = try await readLine()
                if line.isEmpty { break }
                let pair = line.split(separator: ":", maxSplits: 1)
                headers.append((String(pair[0]), pair.count > 1 ? pair[1].trimmingCharacters(in: .whitespaces) : ""))
            }
            var response = Response(status: status, headers: headers, body: [])
            if head || status == 101 || status == 204 || status == 304 { return response }
            func take(_ count: Int) async throws {
                var left = count
                while left > 0 {
                    if buffer.readableBytes == 0 {
                        guard try await fill() else { throw RawHTTPError("connection closed in a body") }
                    }
                    let slice = buffer.readSlice(length: min(left, buffer.readableBytes))!
                    left -= slice.readableBytes
                    if let consume { consume(slice) } else { response.body += slice.readableBytesView }
                }
            }
            if response.header("transfer-encoding")?.lowercased() == "chunked" {
                while true {
                    let size = Int(try await readLine().split(separator: ";")[0], radix: 16) ?? 0
                    if size == 0 {
                        while !(try await readLine()).isEmpty {}
                        break
                    }
                    try await take(size)
                    _ = try await readLine()
                }
            } else if let length = response.header("content-length").flatMap({ Int($0) }) {
                try await take(length)
            } else {
                while try await fill() {}
                try await take(buffer.readableBytes)
            }
            return response
        }

        /// Whether the server closed the connection (reads until end of stream).
        func isClosed() async -> Bool {
            (try? await fill()) == false
        }
    }

    /// Connects to 127.0.0.1:`port` and runs `body` with the connection, then closes it.
    static func with<T: Sendable>(port: Int, _ body: (Connection) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try Channel(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await body(Connection(inbound: inbound, outbound: outbound))
        }
    }

    /// One request on its own connection; an answer that does not come within `timeout`
    /// fails the request (a gateway that never answers must fail the test, not hang it).
    static func request(
        port: Int, host: String, _ path: String, method: String = "GET", headers: [String: String] = [:], body: [UInt8] = [],
        timeout: Duration = .seconds(60)
    ) async throws -> Response {
        try await withThrowingTaskGroup(of: Response.self) { group in
            group.addTask { try await exchange(port: port, host: host, path, method: method, headers: headers, body: body) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw RawHTTPError("no answer to \(method) \(path) (Host \(host)) within \(timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private static func exchange(
        port: Int, host: String, _ path: String, method: String, headers: [String: String], body: [UInt8]
    ) async throws -> Response {
        try await with(port: port) { connection in
            var text = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\n"
            for (name, value) in headers { text += "\(name): \(value)\r\n" }
            if !body.isEmpty || method == "POST" { text += "Content-Length: \(body.count)\r\n" }
            text += "\r\n"
            try await connection.send(text)
            if !body.isEmpty { try await connection.send(body) }
            return try await connection.readResponse()
        }
    }
}

struct RawHTTPError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
