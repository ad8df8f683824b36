import AgentClient
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import OmniRunControl
import OmniRunError
import OmniRunStore

#if canImport(Glibc)
import Glibc
#endif

/// Serves one handed-over connection as HTTP/1.1: a socket pair joins the gateway's
/// byte stream to Hummingbird's HTTP/1 channel, whose requests the API router answers
/// with the sandbox's owner already signed in. The channel has the listeners' limits
/// (header-read timeout, largest head) and the gateway's idle timeout; when it closes, the
/// connection ends whether or not the guest closes its side.
struct HTTPOverGateway: Sendable {
    let sandboxID: String
    let owner: AccountRecord
    let responder: RouterResponder<AppRequestContext>
    let limits: ConnectionLimits
    let onRequest: @Sendable () async -> Void
    let logger: Logger

    func run(_ connection: GatewayConnection) async throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw OmniRunError(.internalError, "socketpair failed: \(errno)")
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let sandboxID = self.sandboxID
        let owner = self.owner
        let responder = self.responder
        let onRequest = self.onRequest
        let logger = self.logger
        let http = GuardedHTTP1Channel(
            responder: { request, writer, channel in
                await onRequest()
                var context = AppRequestContext(source: .init(channel: channel, logger: logger))
                context.account = owner
                context.gatewaySandboxID = sandboxID
                context.logger[metadataKey: "sandbox"] = "\(sandboxID)"
                let response: Response
                do {
                    response = try await responder.respond(to: request, context: context)
                } catch {
                    response = APIError.response(APIError.normalize(error))
                }
                try await writer.write(response: response.head, body: response.body)
            },
            limits: .init(
                headerTimeout: limits.headerTimeout, idleTimeout: limits.gatewayIdleTimeout, maxHeaderBytes: limits.maxHeaderBytes,
                perAddress: nil))
        let server: GuardedHTTP1Channel.Value
        let bridge: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            server = try await ClientBootstrap(group: group).withConnectedSocket(fds[0]) { channel in
                http.setup(channel: channel, logger: logger)
            }
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        do {
            bridge = try await ClientBootstrap(group: group)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .withConnectedSocket(fds[1]) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                    }
                }
        } catch {
            close(fds[1])
            // Through `executeThenClose`: an async channel dropped with its writer open traps.
            try? await server.executeThenClose { _, _ in }
            throw error
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                await http.handle(value: server, logger: logger)
                // The HTTP side is closed (its answer ended the connection, or a timeout):
                // what the guest still sends has nowhere to go.
                await connection.finishInbound()
            }
            tasks.addTask {
                try await bridge.executeThenClose { inbound, outbound in
                    try await withThrowingTaskGroup(of: Void.self) { pipes in
                        pipes.addTask {
                            for try await chunk in inbound { try await connection.write(chunk) }
                            await connection.finish()
                        }
                        for await chunk in connection.inbound { try await outbound.write(chunk) }
                        outbound.finish()
                        try await pipes.next()
                    }
                }
            }
            try await tasks.waitForAll()
        }
    }
}
