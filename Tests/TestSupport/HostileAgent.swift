import AgentProtocol
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix

/// A guest agent that lies, for tests of what the host does with guest data.
///
/// It speaks the real host⇄guest protocol as the agent does behind QEMU's virtio-serial
/// chardev: HTTP/2 with prior knowledge on a Unix socket, one stream per operation, the
/// agent's own HTTP/2 settings. Each request is answered as the test's `script` says:
/// extreme numbers, malformed or truncated JSON, impossible headers, endless bodies,
/// stalls, or bytes that break HTTP/2 itself. Point a `GuestAgentClient` at `path`, or
/// put it where a sandbox's agent socket is and let a real server re-attach to it.
public final class HostileAgent: Sendable {
    /// One request as the agent saw it.
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: [String: String]
        public var body: [UInt8]
    }

    /// How to answer one request.
    public enum Answer: Sendable {
        /// A status, headers and a body; `hold` keeps the stream open after it (no end).
        case reply(status: Int = 200, headers: [(String, String)] = [], body: [UInt8], hold: Bool = false)
        /// `chunk` again and again, as fast as the host takes it, until the host lets go.
        case endless(headers: [(String, String)] = [], chunk: [UInt8])
        /// Reads the request and never answers.
        case stall
        /// Raw bytes on the connection, outside HTTP/2's framing; then the connection
        /// closes if `close`.
        case frames(@Sendable (_ streamID: Int) -> [UInt8], close: Bool)

        /// A JSON (or not quite JSON) body.
        public static func json(_ text: String, status: Int = 200) -> Answer {
            .reply(status: status, headers: [("content-type", "application/json")], body: Array(text.utf8))
        }

        /// Newline-delimited events; `hold` keeps the stream open after them.
        public static func lines(_ lines: [String], hold: Bool = false) -> Answer {
            .reply(
                headers: [("content-type", AgentAPI.eventStreamContentType)], body: Array(lines.map { $0 + "\n" }.joined().utf8),
                hold: hold)
        }
    }

    public let path: String
    private let server: any Channel
    private let state: NIOLockedValueBox<State>
    private let serving: Task<Void, Never>

    private struct State {
        var requests: [String] = []
        var connections = 0
        var bytesSent = 0
    }

    /// Requests seen so far (`METHOD path`), in order.
    public var requests: [String] { state.withLockedValue { $0.requests } }
    /// HTTP/2 connections the host opened.
    public var connections: Int { state.withLockedValue { $0.connections } }
    /// Body bytes handed to the host's connection (what an endless answer got rid of).
    public var bytesSent: Int { state.withLockedValue { $0.bytesSent } }

    private init(path: String, server: any Channel, state: NIOLockedValueBox<State>, serving: Task<Void, Never>) {
        self.path = path
        self.server = server
        self.state = state
        self.serving = serving
    }

    /// Listens on `path` (replacing a socket file there) and answers with `script`.
    public static func start(
        path: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        script: @escaping @Sendable (Request) -> Answer
    ) async throws -> HostileAgent {
        var configuration = NIOHTTP2Handler.Configuration()
        // The agent's own settings (`AgentServer.http2Settings`).
        configuration.connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 4096),
            HTTP2Setting(parameter: .initialWindowSize, value: 4 << 20),
            HTTP2Setting(parameter: .maxFrameSize, value: 1 << 18),
        ]
        configuration.stream.targetWindowSize = 4 << 20
        configuration.connection.targetWindowSize = 1 << 20
        let config = configuration
        let server = try await ServerBootstrap(group: group)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawWriter())
                    return try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .server, configuration: config) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                            return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: stream)
                        }
                    }
                }
            }
        let state = NIOLockedValueBox(State())
        let listener = server.channel
        let serving = Task<Void, Never> {
            _ = try? await server.executeThenClose { connections in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await multiplexer in connections {
                            state.withLockedValue { $0.connections += 1 }
                            group.addTask {
                                await withDiscardingTaskGroup { streams in
                                    do {
                                        for try await stream in multiplexer.inbound {
                                            streams.addTask { await Self.serve(stream, script: script, state: state) }
                                        }
                                    } catch {}
                                }
                            }
                        }
                    } catch {}
                }
            }
        }
        return HostileAgent(path: path, server: listener, state: state, serving: serving)
    }

    /// Stops listening and ends every connection.
    public func stop() async {
        serving.cancel()
        try? await server.close()
        unlink(path)
    }

    private static func serve(
        _ stream: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, script: @Sendable (Request) -> Answer,
        state: NIOLockedValueBox<State>
    ) async {
        let channel = stream.channel
        try? await stream.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var head: HTTPRequestHead?
            var body: [UInt8] = []
            reading: while let part = try await iterator.next() {
                switch part {
                case .head(let h): head = h
                case .body(let buffer): body += buffer.readableBytesView
                case .end: break reading
                }
            }
            guard let head else { return }
            let (path, query) = AgentQuery.parse(head.uri)
            state.withLockedValue { $0.requests.append("\(head.method.rawValue) \(path)") }
            let answer = script(Request(method: head.method.rawValue, path: path, query: query, body: body))
            func writeHead(_ status: Int, _ extra: [(String, String)]) async throws {
                var headers = HTTPHeaders()
                headers.add(name: AgentAPI.versionHeader, value: "\(AgentAPI.version)")
                for (name, value) in extra { headers.add(name: name, value: value) }
                try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)))
            }
            switch answer {
            case .reply(let status, let headers, let bytes, let hold):
                try await writeHead(status, headers)
                if !bytes.isEmpty {
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
                    state.withLockedValue { $0.bytesSent += bytes.count }
                }
                if hold {
                    while try await iterator.next() != nil {}
                    return
                }
                try await outbound.write(.end(nil))
            case .endless(let headers, let chunk):
                try await writeHead(200, headers)
                let buffer = ByteBuffer(bytes: chunk)
                while !Task.isCancelled, channel.isActive {
                    try await outbound.write(.body(.byteBuffer(buffer)))
                    state.withLockedValue { $0.bytesSent += chunk.count }
                }
            case .stall:
                // Until the host closes the stream (or the test stops the agent).
                while try await iterator.next() != nil {}
            case .frames(let make, let close):
                let streamID = (try? await channel.getOption(HTTP2StreamChannelOptions.streamID).get()).map { Int($0) } ?? 1
                guard let connection = channel.parent else { return }
                let bytes = make(streamID)
                // Past the HTTP/2 handler to `RawWriter`, which puts them on the socket as they are.
                try await connection.triggerUserOutboundEvent(RawWriter.Bytes(bytes: bytes))
                if close {
                    try? await Task.sleep(for: .milliseconds(50))
                    try? await connection.close()
                } else {
                    while try await iterator.next() != nil {}
                }
            }
        }
    }

    /// First in a connection's pipeline: writes `Bytes` events as they are, outside HTTP/2.
    private final class RawWriter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = Any
        struct Bytes: Sendable {
            var bytes: [UInt8]
        }

        func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
            guard let raw = event as? Bytes else {
                context.triggerUserOutboundEvent(event, promise: promise)
                return
            }
            context.writeAndFlush(NIOAny(ByteBuffer(bytes: raw.bytes)), promise: promise)
        }
    }

    // MARK: honest answers

    /// What an honest, idle agent answers to the calls every connection makes (health,
    /// init, clock, snapshot), or nil for the rest.
    public static func honest(_ request: Request) -> Answer? {
        switch request.path {
        case AgentAPI.Path.health: return .json(#"{"apiVersion":2,"sandboxID":null,"uptimeMillis":1000,"processes":1}"#)
        case AgentAPI.Path.initialize: return .json(#"{"machineID":"0123456789abcdef0123456789abcdef","entropyAdded":true}"#)
        case AgentAPI.Path.clock, AgentAPI.Path.prepareSnapshot, AgentAPI.Path.shutdown: return .json("{}")
        // No program in the guest connects to the host gateway: the host's accepts wait.
        case AgentAPI.Path.gatewayAccept: return .stall
        default: return nil
        }
    }

    // MARK: frames that break HTTP/2

    /// HTTP/2 frames by hand: a 9-byte header and a payload.
    public enum Frames {
        public static func frame(type: UInt8, flags: UInt8 = 0, stream: Int, length: Int? = nil, payload: [UInt8] = []) -> [UInt8] {
            let size = length ?? payload.count
            return [UInt8(truncatingIfNeeded: size >> 16), UInt8(truncatingIfNeeded: size >> 8), UInt8(truncatingIfNeeded: size), type, flags]
                + be32(UInt32(truncatingIfNeeded: stream) & 0x7fff_ffff) + payload
        }

        static func be32(_ value: UInt32) -> [UInt8] {
            [UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
        }

        /// A DATA frame that says it is 16 MiB long (the host allows 256 KiB).
        public static func oversized(stream: Int) -> [UInt8] {
            frame(type: 0, stream: stream, length: 0xFF_FFFF, payload: [UInt8](repeating: 0x41, count: 1024))
        }

        /// A DATA frame cut off after a few bytes of its 100 000 (the connection closes after it).
        public static func truncated(stream: Int) -> [UInt8] {
            frame(type: 0, stream: stream, length: 100_000, payload: Array("{\"apiVers".utf8))
        }

        /// Bytes that are no frame at all.
        public static func garbage(stream: Int) -> [UInt8] {
            [UInt8](repeating: 0xFF, count: 4096)
        }

        /// A PUSH_PROMISE (the host turned push off).
        public static func pushPromise(stream: Int) -> [UInt8] {
            frame(type: 5, flags: 0x4, stream: stream, payload: be32(2) + [0x82, 0x86, 0x84, 0x41, 0x05] + Array("agent".utf8))
        }

        /// WINDOW_UPDATEs on the connection that take its window past 2³¹−1.
        public static func windowOverflow(stream: Int) -> [UInt8] {
            frame(type: 8, stream: 0, payload: be32(0x7fff_ffff)) + frame(type: 8, stream: 0, payload: be32(0x7fff_ffff))
        }

        /// SETTINGS with an initial window size past 2³¹−1.
        public static func badSettings(stream: Int) -> [UInt8] {
            frame(type: 4, stream: 0, payload: [0x00, 0x04] + be32(0xFFFF_FFFF))
        }

        /// A HEADERS frame whose header block is not HPACK.
        public static func badHeaderBlock(stream: Int) -> [UInt8] {
            frame(type: 1, flags: 0x4, stream: stream, payload: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
        }

        /// CONTINUATION frames without end, each carrying more header block.
        public static func continuationFlood(stream: Int) -> [UInt8] {
            var bytes = frame(type: 1, stream: stream, payload: [0x88])
            for _ in 0..<64 { bytes += frame(type: 9, stream: stream, payload: [UInt8](repeating: 0x00, count: 1024)) }
            return bytes
        }
    }
}
