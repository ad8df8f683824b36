import Foundation
import NIOCore
import NIOPosix
import OmniRunError

/// A preview connection for a sandbox another node runs: handed on, bytes as they are, to
/// that node's preview gateway, which routes and checks it as its own (exposure tokens,
/// secure mode, Host). The first request says which node sent it, so two nodes that
/// disagree about an owner never pass a connection back and forth.
struct PreviewNodeRoute: Sendable, Equatable {
    /// The header a handed-on request carries; a gateway that gets it serves its own sandboxes only.
    static let header = "X-OmniRun-Relayed-By"
    let node: String
    let host: String
    let port: Int

    /// The host of an advertise URL (`http://10.0.0.11:8080` → `10.0.0.11`; IPv6 unbracketed).
    static func host(ofAdvertiseURL url: String) -> String? {
        guard let parsed = URLComponents(string: url), let host = parsed.host, !host.isEmpty else { return nil }
        return host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// Connects (5 s at most), sends `upstream` and hands every byte of the answer to `write`
    /// until the other node closes; the client's half-close is passed on.
    func pipe<Upstream: AsyncSequence & Sendable>(
        _ upstream: Upstream, write: @escaping @Sendable (ByteBuffer) async throws -> Void
    ) async throws where Upstream.Element == ByteBuffer {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await chunk in upstream { try await outbound.write(chunk) }
                    outbound.finish()
                }
                for try await chunk in inbound { try await write(chunk) }
                group.cancelAll()
            }
        }
    }
}
