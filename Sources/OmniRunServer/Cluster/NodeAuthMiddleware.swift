import HTTPTypes
import Hummingbird
import OmniRunControl
import OmniRunError

/// Checks that a request saying it comes from another node (`x-omnirun-relayed-by`) carries
/// that node's signature under the cluster's secret (`ClusterAuth`), and that the
/// node-to-node routes (`/internal/…`) are reached by nodes only. A client that sets the
/// relay header itself gets a 401, not a way around placement or ownership.
struct NodeAuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let auth: ClusterAuth

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let claimed = request.headers[NodeRelay.header] != nil
        let isInternal = request.uri.path.hasPrefix("/internal/")
        guard claimed || isInternal else { return try await next(request, context) }
        guard
            let node = auth.verify(
                request.headers[HTTPField.Name(ClusterAuth.header)!], method: request.method.rawValue, target: request.uri.description)
        else {
            throw OmniRunError(
                .unauthorized,
                isInternal
                    ? "this route is for the nodes of the cluster (a signed node-to-node call)"
                    : "a request relayed by another node must carry that node's signature (\(ClusterAuth.header))")
        }
        if claimed, request.headers[NodeRelay.header] != node {
            throw OmniRunError(.unauthorized, "the relaying node and the signing node differ")
        }
        var context = context
        context.callingNode = node
        context.logger[metadataKey: "fromNode"] = "\(node)"
        return try await next(request, context)
    }
}
