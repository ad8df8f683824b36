import AgentProtocol
import Logging
import NIOCore
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

    private init(channel: any Channel, multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>) {
        self.channel = channel
        self.multiplexer = multiplexer
    }

    static var configuration: NIOHTTP2Handler.Configuration {
        var configuration = NIOHTTP2Handler.Configuration()
        configuration.connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 4096),
            HTTP2Setting(parameter: .initialWindowSize, value: 4 << 20),
            HTTP2Setting(parameter: .maxFrameSize, value: 1 << 18),
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
        let (channel, multiplexer) = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(2))
            .connect(unixDomainSocketPath: socketPath) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
                        mode: .client, configuration: configuration
                    ) { stream in stream.eventLoop.makeSucceededVoidFuture() }
                    return (channel, multiplexer)
                }
            }
        return AgentConnection(channel: channel, multiplexer: multiplexer)
    }

    var isActive: Bool { channel.isActive }

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
