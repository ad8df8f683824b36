import AgentClient
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OmniRunControl
import OmniRunCore
import OmniRunError
import SandboxRuntime
import ServiceLifecycle

/// The preview gateway: an HTTP/1.1 listener that routes each connection by its Host to a
/// port of a sandbox, through the agent's tunnel (the sandbox needs no network device).
/// Request heads are checked and rewritten one by one (kept-alive connections included);
/// bodies, answers and upgraded connections (WebSocket) stream through unparsed, with
/// back-pressure both ways.
final class PreviewGateway: Service, Sendable {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>
    typealias Listener = NIOAsyncChannel<Accepted, Never>

    /// A client connection and its header-read clock.
    struct Accepted: Sendable {
        let connection: Connection
        let headClock: HeadClock
    }

    private let listener: Listener
    private let exposures: ExposureService
    private let limits: ConnectionLimits
    private let logger: Logger
    /// This node's id, named in connections handed on to another node.
    private let nodeID: String
    /// The port it listens on (the configured one, or the one the system chose).
    let port: Int

    private init(listener: Listener, exposures: ExposureService, limits: ConnectionLimits, logger: Logger) {
        self.listener = listener
        self.exposures = exposures
        self.limits = limits
        self.logger = logger
        self.nodeID = exposures.sandboxes.configuration.nodeID
        self.port = listener.channel.localAddress?.port ?? 0
    }

    /// Binds at once, so that the URLs handed out name the real port. The listener holds at
    /// most `previewConnections` connections (then accepts none until one closes), and
    /// `connectionsPerAddress` from one address; a connection over which nothing moves for
    /// `previewIdleTimeout` closes.
    static func bind(host: String, port: Int, limits: ConnectionLimits, logger: Logger) async throws -> Listener {
        let perAddress = limits.connectionsPerAddress > 0 ? ConnectionCounter(limit: limits.connectionsPerAddress) : nil
        let maxConnections = limits.previewConnections
        let idle = TimeAmount(limits.previewIdleTimeout)
        let headerTimeout = TimeAmount(limits.headerTimeout)
        do {
            return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            AvailableConnectionsChannelHandler(delegate: MaximumAvailableConnections(maxConnections, logger: logger)))
                    }
                }
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let perAddress {
                            try channel.pipeline.syncOperations.addHandler(AddressLimitHandler(limit: perAddress))
                        }
                        let timeout = RequestHeadTimeoutHandler(timeout: headerTimeout, armsOnRead: false)
                        try channel.pipeline.syncOperations.addHandler(timeout)
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: idle))
                        try channel.pipeline.syncOperations.addHandler(IdleCloseHandler())
                        let connection = try Connection(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        return Accepted(connection: connection, headClock: HeadClock(timeout, eventLoop: channel.eventLoop))
                    }
                }
        } catch {
            throw OmniRunError(.unavailable, "the preview gateway cannot listen on \(host):\(port): \(error)")
        }
    }

    static func start(listener: Listener, exposures: ExposureService, limits: ConnectionLimits, logger: Logger) -> PreviewGateway {
        PreviewGateway(listener: listener, exposures: exposures, limits: limits, logger: logger)
    }

    func run() async throws {
        logger.info("preview gateway listening", metadata: ["port": "\(port)"])
        try await cancelWhenGracefulShutdown {
            try await self.listener.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await accepted in connections {
                        group.addTask { await self.serve(accepted.connection, headClock: accepted.headClock) }
                    }
                }
            }
        }
    }

    /// Where a connection's bytes go: a port of a sandbox of this node, or another node's gateway.
    private enum Route: Sendable {
        case sandbox(PreviewTarget)
        case node(PreviewNodeRoute)
    }

    private enum Part: Sendable {
        case client
        case sandbox
    }

    /// One client connection: the first request decides the route; later ones must keep to it.
    /// Each request's head must arrive whole in time (`headClock`; armed from the start).
    func serve(_ connection: Connection, headClock: HeadClock) async {
        let exposures = self.exposures
        let logger = self.logger
        do {
            try await connection.executeThenClose { inbound, outbound in
                let upstream = BytePipe()
                let (targets, targetSink) = AsyncStream<Route>.makeStream()
                let answered = NIOLockedValueBox(false)
                try await withThrowingTaskGroup(of: Part.self) { group in
                    group.addTask {
                        defer { targetSink.finish() }
                        var framer = RequestFramer(maxHeadSize: self.limits.maxHeaderBytes)
                        var target: PreviewTarget?
                        var handedOn = false
                        do {
                            reading: for try await chunk in inbound {
                                let events = try framer.feed(chunk)
                                // A head begun and not ended runs the clock; a whole one stops it.
                                if framer.isInsideHead {
                                    headClock.arm()
                                } else if events.contains(where: { if case .head = $0 { true } else { false } }) {
                                    headClock.disarm()
                                }
                                for event in events {
                                    switch event {
                                    case .head(let head):
                                        if handedOn {
                                            // The node that runs the sandbox checks every request itself.
                                            try await upstream.send(head.serialized)
                                            continue
                                        }
                                        if let current = target {
                                            // A later request of a kept-alive connection: same host, same credentials.
                                            guard current.policy.admits(head) else { break reading }
                                            try await upstream.send(current.policy.rewrite(head).serialized)
                                            await exposures.accessed(sandboxID: current.sandbox.id, exposureID: current.exposureID)
                                            continue
                                        }
                                        switch await exposures.resolve(head) {
                                        case .reply(let answer):
                                            try await outbound.write(answer)
                                            break reading
                                        case .forward(let chosen):
                                            target = chosen
                                            try await upstream.send(chosen.policy.rewrite(head).serialized)
                                            await exposures.accessed(sandboxID: chosen.sandbox.id, exposureID: chosen.exposureID)
                                            targetSink.yield(.sandbox(chosen))
                                        case .relay(let route):
                                            handedOn = true
                                            var marked = head
                                            marked.set(PreviewNodeRoute.header, self.nodeID)
                                            try await upstream.send(marked.serialized)
                                            targetSink.yield(.node(route))
                                        }
                                    case .body(let bytes):
                                        try await upstream.send(bytes)
                                    }
                                }
                            }
                        } catch let error as OmniRunError where target == nil && !handedOn {
                            let status = error.code == .payloadTooLarge ? (431, "Request Header Fields Too Large") : (400, "Bad Request")
                            if case .reply(let answer) = PreviewDecision.error(
                                status.0, status.1, code: error.code.rawValue, message: error.message)
                            {
                                try? await outbound.write(answer)
                            }
                        } catch is CancellationError {
                        } catch {
                            logger.debug("preview request stream ended", metadata: ["error": "\(error)"])
                        }
                        await upstream.finish()
                        return .client
                    }
                    group.addTask {
                        for await route in targets {
                            var refused = false
                            let target: PreviewTarget
                            switch route {
                            case .sandbox(let chosen):
                                target = chosen
                            case .node(let node):
                                do {
                                    try await node.pipe(upstream.chunks) { data in
                                        answered.withLockedValue { $0 = true }
                                        try await outbound.write(data)
                                    }
                                } catch {
                                    logger.debug("handing a preview connection on failed", metadata: ["node": "\(node.node)", "error": "\(error)"])
                                }
                                if !answered.withLockedValue({ $0 }),
                                    case .reply(let answer) = PreviewDecision.error(
                                        502, "Bad Gateway", code: "unavailable", message: "the node that runs this sandbox did not answer")
                                {
                                    try? await outbound.write(answer)
                                }
                                return .sandbox
                            }
                            do {
                                try await target.sandbox.tunnel(port: target.port, upstream: upstream.chunks) {
                                    data in
                                    answered.withLockedValue { $0 = true }
                                    try await outbound.write(data)
                                }
                            } catch {
                                refused = true
                            }
                            // Refused, or closed without a byte of answer: the client gets a 502
                            // either way, never a connection closed under its request.
                            if !answered.withLockedValue({ $0 }),
                                case .reply(let answer) = PreviewDecision.error(
                                    502, "Bad Gateway", code: "unavailable",
                                    message: refused
                                        ? "nothing answers on port \(target.port) of this sandbox"
                                        : "port \(target.port) of this sandbox closed the connection without answering")
                            {
                                try? await outbound.write(answer)
                            }
                            break
                        }
                        return .sandbox
                    }
                    // The sandbox's side ending (or no route) ends the connection; the client's
                    // side ending (a half-close) leaves the answer to finish.
                    while let part = try await group.next() {
                        if part == .sandbox {
                            group.cancelAll()
                            await upstream.finish()
                        }
                    }
                }
            }
        } catch {
            logger.debug("preview connection ended", metadata: ["error": "\(error)"])
        }
    }
}
