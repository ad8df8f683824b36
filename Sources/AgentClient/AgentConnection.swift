import AgentProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import OmniRunError

/// One HTTP/2 connection to a guest agent over the Unix socket QEMU exposes for
/// the `omnirun.0` virtio-serial port. Each operation opens its own stream.
final class AgentConnection: Sendable {
    typealias Stream = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

    let channel: any Channel
    private let multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>
    /// The first way the agent broke the protocol on this connection: HTTP/2 itself
    /// (bad frames, headers or flow control: NIO closes the connection) or an answer
    /// that cannot be true (`GuestAgentClient.violation`).
    let violations: ViolationRecorder
    /// Set once `GuestAgentClient.connect` hands the connection out: from then on the
    /// agent ending it (GOAWAY) fails the sandbox like any other violation.
    let established = NIOLockedValueBox(false)

    private init(
        channel: any Channel, multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>, violations: ViolationRecorder
    ) {
        self.channel = channel
        self.multiplexer = multiplexer
        self.violations = violations
    }

    /// How a violation of HTTP/2 itself (not of the agent's API) is reported.
    static let brokeHTTP2 = "the agent broke HTTP/2"

    /// Largest header block the agent may send (NIO's HPACK decoder enforces it).
    static let maxHeaderListSize = 64 << 10

    static var configuration: NIOHTTP2Handler.Configuration {
        var configuration = NIOHTTP2Handler.Configuration()
        configuration.connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 4096),
            HTTP2Setting(parameter: .initialWindowSize, value: 4 << 20),
            HTTP2Setting(parameter: .maxFrameSize, value: 1 << 18),
            HTTP2Setting(parameter: .maxHeaderListSize, value: maxHeaderListSize),
            // The agent never pushes: a pushed stream nobody reads would hold up to a
            // stream window of memory each, so a PUSH_PROMISE is a connection error.
            HTTP2Setting(parameter: .enablePush, value: 0),
        ]
        configuration.stream.targetWindowSize = 4 << 20
        // HTTP/2's connection window defaults to 64 KiB: one 64 KiB piece in flight
        // per round trip for all streams together. 1 MiB doubled file throughput
        // (measured: 4 and 16 MiB were slower again, the guest then queues more
        // than it can take in under emulation).
        configuration.connection.targetWindowSize = 1 << 20
        return configuration
    }

    static func connect(socketPath: String, group: any EventLoopGroup) async throws -> AgentConnection {
        let configuration = Self.configuration
        let recorder = ViolationRecorder()
        let (channel, multiplexer) = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(2))
            .connect(unixDomainSocketPath: socketPath) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
                        mode: .client, configuration: configuration
                    ) { stream in
                        // The agent never opens streams (push is off): one that arrives is closed.
                        stream.close(promise: nil)
                        return stream.eventLoop.makeSucceededVoidFuture()
                    }
                    try channel.pipeline.syncOperations.addHandler(ProtocolErrorHandler(recorder: recorder))
                    return (channel, multiplexer)
                }
            }
        return AgentConnection(channel: channel, multiplexer: multiplexer, violations: recorder)
    }

    /// Open, and the agent has not said it takes no new streams (GOAWAY).
    var isActive: Bool { channel.isActive && violations.goAway == nil }

    func openStream() async throws -> Stream {
        try await multiplexer.openStream { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                return try Stream(wrappingChannelSynchronously: channel)
            }
        }
    }

    func close() async {
        try? await channel.close()
    }
}

/// Remembers the first protocol violation of a connection and tells whoever listens
/// (the sandbox's runtime), once.
final class ViolationRecorder: Sendable {
    private struct State {
        var error: String?
        var listener: (@Sendable (String) -> Void)?
        var goAway: String?
    }
    private let state = NIOLockedValueBox(State())

    /// Set once the agent sent GOAWAY: why the connection takes no new streams.
    var goAway: String? { state.withLockedValue { $0.goAway } }

    func recordGoAway(_ message: String) {
        state.withLockedValue { state in
            if state.goAway == nil { state.goAway = message }
        }
    }

    /// The first error, if any.
    var error: String? { state.withLockedValue { $0.error } }

    func record(_ message: String) {
        let listener: (@Sendable (String) -> Void)? = state.withLockedValue { state in
            guard state.error == nil else { return nil }
            state.error = message
            return state.listener
        }
        listener?(message)
    }

    /// Calls `listener` with the error now if there was one, else when it happens.
    func listen(_ listener: @escaping @Sendable (String) -> Void) {
        let past: String? = state.withLockedValue { state in
            state.listener = listener
            return state.error
        }
        if let past { listener(past) }
    }
}

/// Sits behind the HTTP/2 handler: an error it raises about what the agent sent (a
/// connection error: NIO answers GOAWAY) is recorded and the connection closed, so every
/// call on it ends at once. Other errors (the socket going away) are not the agent's
/// protocol failing.
private final class ProtocolErrorHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTP2Frame

    let recorder: ViolationRecorder

    init(recorder: ViolationRecorder) {
        self.recorder = recorder
    }

    /// Frames of stream 0 come here. A GOAWAY is remembered (with its code): no new stream
    /// can be opened on this connection, and a call that tries says why.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway(let lastStreamID, let code, _) = unwrapInboundIn(data).payload {
            recorder.recordGoAway("the agent closed the connection (GOAWAY \(code), last stream \(lastStreamID))")
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Opening a stream after the agent's GOAWAY is the host's own attempt on a closing
        // connection, not something the agent sent.
        guard error is any NIOHTTP2Error || error is any NIOHPACKError, !(error is NIOHTTP2Errors.IOOnClosedConnection) else {
            context.fireErrorCaught(error)
            return
        }
        recorder.record("\(AgentConnection.brokeHTTP2): \(error)")
        context.fireErrorCaught(error)
        // NIO has sent GOAWAY and leaves the connection open: nothing more is read from it.
        context.close(promise: nil)
    }
}
