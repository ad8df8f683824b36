import AgentProtocol
import NIOCore
import NIOPosix

/// Joins one HTTP/2 stream to a TCP connection on the guest's loopback: the request
/// body flows to the socket, what the socket answers is the response body.
enum Tunnel {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    /// Host → guest: connects to `port` in the guest and joins it to the stream.
    static func run(port: Int, exchange: inout Exchange, group: any EventLoopGroup) async throws {
        let connection: Connection
        do {
            connection = try await ClientBootstrap(group: group)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .connectTimeout(.seconds(5))
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try Connection(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true))
                    }
                }
        } catch {
            throw AgentFailure(status: 502, code: AgentErrorCode.failed, message: "nothing answers on guest port \(port): \(error)")
        }
        try await exchange.writeHead(status: 200, contentType: "application/octet-stream")
        try await join(connection, to: &exchange)
    }

    /// Pipes bytes both ways between a connection and a stream whose head is written,
    /// until both directions have ended.
    static func join(_ connection: Connection, to exchange: inout Exchange) async throws {
        let outbound = exchange.outbound
        try await connection.executeThenClose { socketIn, socketOut in
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    for try await buffer in socketIn {
                        try await outbound.write(.body(.byteBuffer(buffer)))
                    }
                    try await outbound.write(.end(nil))
                }
                // The request body is read in this task so that it keeps its back-pressure;
                // it ends when the host ends it or the stream closes.
                while let chunk = try await exchange.nextBodyChunk() {
                    try await socketOut.write(chunk)
                }
                socketOut.finish()
                try await tasks.next()
            }
        }
    }
}
