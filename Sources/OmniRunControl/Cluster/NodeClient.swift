import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import OmniRunError
import OmniRunStore

/// Signed calls from this node to another (`ClusterAuth`), over one HTTP client: template
/// fetches and paused sandboxes' moves. Connecting is bounded (5 s), and so is a read that
/// stalls (60 s); a whole call has the caller's deadline.
package final class NodeClient: Sendable {
    package let auth: ClusterAuth
    private let client: HTTPClient
    private let logger: Logger

    package init(auth: ClusterAuth, logger: Logger) {
        self.auth = auth
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(60))
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.logger = logger
    }

    package func shutdown() async {
        try? await client.shutdown()
    }

    /// `method target` on `node`'s API, signed; the answer's body streams.
    package func call(_ method: String, _ target: String, on node: NodeRecord, deadline: TimeAmount = .seconds(60)) async throws
        -> HTTPClientResponse
    {
        guard var base = node.advertiseURL else { throw OmniRunError(.unavailable, "node \(node.id) has no advertise URL") }
        if base.hasSuffix("/") { base.removeLast() }
        var request = HTTPClientRequest(url: base + target)
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: ClusterAuth.header, value: auth.sign(method: method, target: target))
        do {
            return try await client.execute(request, timeout: deadline, logger: logger)
        } catch {
            throw OmniRunError(.unavailable, "node \(node.id) did not answer: \(error)")
        }
    }
}
