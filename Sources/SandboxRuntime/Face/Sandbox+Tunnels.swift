import AgentClient
import NIOCore

/// Connections into the guest: tunnels to its ports and its gateway's connections out.
extension Sandbox {
    /// Connects to `port` on the guest's loopback: `upstream` is sent to it, its answer
    /// goes to `onData` until it closes.
    public func tunnel<Upstream: AsyncSequence & Sendable>(
        port: Int, upstream: Upstream, onData: @escaping @Sendable (ByteBuffer) async throws -> Void
    ) async throws where Upstream.Element == ByteBuffer {
        try await agent.tunnel(port: port, upstream: upstream, onData: onData)
    }

    /// Waits for the guest to open a connection to its gateway and hands it to `serve`
    /// (`GuestAgentClient.acceptGatewayConnection` tells the bounds).
    public func acceptGatewayConnection(
        linger: Duration = .seconds(5), stallTimeout: Duration = .seconds(60),
        onAccepted: @escaping @Sendable () -> Void,
        serve: @escaping @Sendable (GatewayConnection) async throws -> Void
    ) async throws {
        try await agent.acceptGatewayConnection(linger: linger, stallTimeout: stallTimeout, onAccepted: onAccepted, serve: serve)
    }
}
