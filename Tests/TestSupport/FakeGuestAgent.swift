import AgentProtocol
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix

/// A well-behaved guest agent without a guest, for control-plane tests that need no VM.
///
/// It speaks the real host⇄guest protocol (HTTP/2 with prior knowledge on a Unix socket,
/// one stream per operation, the agent's own HTTP/2 settings) on the socket a
/// `MemoryMachine` names as its agent channel, and answers from `FakeGuest`: health,
/// init, clock, metrics, the snapshot/pause handshake (its parked line goes to the
/// machine's console log), processes (see `FakeGuest` for the commands it understands),
/// files in an in-memory file system, and tunnels to ports a fake server listens on
/// (they echo what they get). Host gateway accepts and directory watches wait until
/// the host lets go; contexts and desktops are a 404 like any unknown route.
public final class FakeGuestAgent: Sendable {
    public let path: String
    let guest: FakeGuest
    /// The lifecycle calls the host made to this guest, in order (`health`, `initialize`).
    public var lifecycleCalls: [String] { get async { await guest.lifecycleCalls } }
    private let server: any Channel
    private let connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>
    private let serving: Task<Void, Never>

    private init(
        path: String, guest: FakeGuest, server: any Channel, connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>,
        serving: Task<Void, Never>
    ) {
        self.path = path
        self.guest = guest
        self.server = server
        self.connections = connections
        self.serving = serving
    }

    /// Listens on `path` (replacing a socket file there) as a guest in `state`. `console`
    /// is the file its console lines go to; `onShutdown` runs after it answered `shutdown`.
    public static func start(
        path: String, state: FakeGuestState = .fresh(), console: String? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onShutdown: @escaping @Sendable () async -> Void = {}
    ) async throws -> FakeGuestAgent {
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
        let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
        let server = try await ServerBootstrap(group: group)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                connections.withLockedValue { $0[ObjectIdentifier(channel)] = channel }
                channel.closeFuture.whenComplete { _ in _ = connections.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .server, configuration: config) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                            return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: stream)
                        }
                    }
                }
            }
        let guest = FakeGuest(state: state, console: console)
        let listener = server.channel
        let serving = Task<Void, Never> {
            _ = try? await server.executeThenClose { accepted in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await multiplexer in accepted {
                            group.addTask {
                                await withDiscardingTaskGroup { streams in
                                    do {
                                        for try await stream in multiplexer.inbound {
                                            streams.addTask { await Self.serve(stream, guest: guest, onShutdown: onShutdown) }
                                        }
                                    } catch {}
                                }
                            }
                        }
                    } catch {}
                }
            }
        }
        return FakeGuestAgent(path: path, guest: guest, server: listener, connections: connections, serving: serving)
    }

    /// Stops listening, ends every connection and every process (the machine stopped).
    public func stop() async {
        try? await server.close()
        for connection in connections.withLockedValue({ Array($0.values) }) { try? await connection.close() }
        serving.cancel()
        await guest.stop()
        unlink(path)
    }

    /// The guest's files and identity now (what a pause or snapshot saves).
    public func state() async -> FakeGuestState { await guest.state }

    /// Host connections open now.
    public var openConnections: Int { connections.withLockedValue { $0.count } }

    // MARK: serving

    private typealias Outbound = NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>

    private static func serve(
        _ stream: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, guest: FakeGuest,
        onShutdown: @escaping @Sendable () async -> Void
    ) async {
        let channel = stream.channel
        try? await stream.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            guard case .head(let head)? = try await iterator.next() else { return }
            let (path, query) = AgentQuery.parse(head.uri)
            let reply = Reply(outbound: outbound)
            // No program in the guest connects to the host gateway and no file changes
            // behind the host's back: these wait until the host lets go.
            if path == AgentAPI.Path.gatewayAccept {
                while try await iterator.next() != nil {}
                return
            }
            var body: [UInt8] = []
            reading: while let part = try await iterator.next() {
                switch part {
                case .head: continue
                case .body(let buffer): body += buffer.readableBytesView
                case .end: break reading
                }
            }
            do {
                try await route(head.method, path, query, body, reply: reply, guest: guest, channel: channel)
            } catch let error as FakeGuestError {
                try await reply.json(AgentErrorBody(code: error.code, message: error.message), status: error.status)
            } catch is DecodingError {
                try await reply.json(AgentErrorBody(code: AgentErrorCode.invalidArgument, message: "malformed request"), status: 400)
            }
            if head.method == .POST, path == AgentAPI.Path.shutdown { await onShutdown() }
            if path == AgentAPI.Path.fileWatch {
                while try await iterator.next() != nil {}
            }
        }
    }

    private static func route(
        _ method: HTTPMethod, _ path: String, _ query: [String: String], _ body: [UInt8], reply: Reply, guest: FakeGuest,
        channel: any Channel
    ) async throws {
        typealias P = AgentAPI.Path
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(type, from: Data(body)) }
        func param(_ name: String) throws -> String {
            guard let value = query[name] else { throw FakeGuestError.badRequest("missing query parameter \(name)") }
            return value
        }
        switch (method, path) {
        case (.GET, P.health): try await reply.json(await guest.health())
        case (.POST, P.initialize): try await reply.json(try await guest.initialize(try decode(InitRequest.self)))
        case (.POST, P.prepareSnapshot):
            await guest.park()
            try await reply.empty()
        case (.POST, P.shutdown), (.POST, P.clock): try await reply.empty()
        case (.GET, P.metrics): try await reply.json(await guest.metrics())

        case (.POST, P.processStart):
            let pid = await guest.start(try decode(ProcessStartRequest.self))
            try await reply.head(200, contentType: AgentAPI.eventStreamContentType)
            try await reply.line(ProcessEvent(type: .start, pid: pid, timestampMillis: guestClockMillis()))
            try await follow(pid, replay: true, reply: reply, guest: guest, channel: channel)
        case (.POST, P.processConnect):
            let selector = try decode(ProcessSelector.self)
            let pid = try await guest.resolve(selector)
            try await reply.head(200, contentType: AgentAPI.eventStreamContentType)
            try await follow(pid, replay: selector.replay, reply: reply, guest: guest, channel: channel)
        case (.POST, P.processInput):
            try await guest.input(try decode(ProcessInputRequest.self))
            try await reply.empty()
        case (.POST, P.processSignal):
            try await guest.signal(try decode(ProcessSignalRequest.self))
            try await reply.empty()
        case (.POST, P.processResize): try await reply.empty()
        case (.GET, P.processOutput):
            guard let pid = Int32(try param("pid")) else { throw FakeGuestError.badRequest("invalid pid") }
            try await reply.json(try await guest.output(of: pid))
        case (.GET, P.processList): try await reply.json(await guest.list(includeFinished: query["all"] == "1"))

        case (.GET, P.fileRead):
            let contents = try await guest.read(try param("path"), user: query["user"])
            try await reply.head(200, contentType: "application/octet-stream", extra: [("x-file-size", "\(contents.count)")])
            if !contents.isEmpty { try await reply.outbound.write(.body(.byteBuffer(ByteBuffer(bytes: contents)))) }
            try await reply.outbound.write(.end(nil))
        case (.PUT, P.fileWrite), (.POST, P.fileWrite):
            let mode = query["mode"].flatMap { UInt32($0, radix: 8) }
            try await reply.json(
                try await guest.write(try param("path"), user: query["user"], bytes: body, mode: mode, append: query["append"] == "true"))
        case (.GET, P.fileStat): try await reply.json(try await guest.stat(try param("path"), user: query["user"]))
        case (.GET, P.fileList):
            try await reply.json(try await guest.list(try param("path"), depth: Int(query["depth"] ?? "1") ?? 1, user: query["user"]))
        case (.POST, P.fileMakeDirectory): try await reply.json(try await guest.makeDirectory(try decode(MakeDirectoryRequest.self)))
        case (.POST, P.fileMove): try await reply.json(try await guest.move(try decode(MoveRequest.self)))
        case (.POST, P.fileRemove):
            try await guest.remove(try decode(RemoveRequest.self))
            try await reply.empty()
        case (.GET, P.fileWatch):
            _ = try await guest.stat(try param("path"), user: query["user"])
            try await reply.head(200, contentType: AgentAPI.eventStreamContentType)

        case (.POST, P.tunnel):
            guard let port = Int(try param("port")), port > 0, port < 65536 else { throw FakeGuestError.badRequest("invalid port") }
            guard await guest.isListening(port) else {
                throw FakeGuestError(status: 502, code: AgentErrorCode.failed, message: "nothing answers on guest port \(port)")
            }
            // An echo server: what the host sent comes back.
            try await reply.head(200, contentType: "application/octet-stream")
            if !body.isEmpty { try await reply.outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try await reply.outbound.write(.end(nil))
        default:
            throw FakeGuestError.notFound("no route \(method) \(path)")
        }
    }

    /// Sends a process's output and its `end` once it has ended (or until the host goes away).
    private static func follow(_ pid: Int32, replay: Bool, reply: Reply, guest: FakeGuest, channel: any Channel) async throws {
        var end = await guest.end(of: pid)
        while end == nil {
            guard channel.isActive, !Task.isCancelled else { return }
            try await Task.sleep(for: .milliseconds(5))
            end = await guest.end(of: pid)
        }
        if replay {
            for event in await guest.outputEvents(of: pid) { try await reply.line(event) }
        }
        if let end { try await reply.line(end) }
        try await reply.outbound.write(.end(nil))
    }

    /// Writes answers on one stream.
    private struct Reply {
        let outbound: Outbound

        func head(_ status: Int, contentType: String, extra: [(String, String)] = []) async throws {
            var headers = HTTPHeaders()
            headers.add(name: AgentAPI.versionHeader, value: "\(AgentAPI.version)")
            headers.add(name: "content-type", value: contentType)
            for (name, value) in extra { headers.add(name: name, value: value) }
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)))
        }

        func json<T: Encodable>(_ value: T, status: Int = 200) async throws {
            let bytes = try JSONEncoder().encode(value)
            try await head(status, contentType: "application/json")
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
            try await outbound.write(.end(nil))
        }

        func empty() async throws {
            try await head(200, contentType: "application/json")
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "{}"))))
            try await outbound.write(.end(nil))
        }

        /// One line of an event stream.
        func line<T: Encodable>(_ event: T) async throws {
            var bytes = try JSONEncoder().encode(event)
            bytes.append(UInt8(ascii: "\n"))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
        }
    }
}
