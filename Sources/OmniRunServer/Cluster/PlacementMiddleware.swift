import Foundation
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// `POST /sandboxes` on any node: picks the node that restores the sandbox — in the
/// requested `region` (default this node's), up and not draining, holding the template's
/// snapshot if any node does — by the better of two at random on free CPU and memory, and
/// relays the create there (or lets this node serve it).
struct PlacementMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let relay: NodeRelay
    let configuration: ServerConfiguration
    let catalog: ImageCatalog

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .post, request.uri.path == "/sandboxes", !NodeRelay.wasRelayed(request) else {
            return try await next(request, context)
        }
        _ = try context.requireAccount()
        var request = request
        let body = try await JSON.collect(&request, limit: configuration.maxJSONBody)
        let fields = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
        let region = try Self.region(fields["region"]) ?? configuration.region
        let named = (fields["template"] ?? fields["templateID"] ?? fields["templateId"]) as? String ?? "python-3.11"
        let nodes = try await relay.nodes.list()
        guard let chosen = Self.choose(nodes, region: region, template: catalog.resolve(named), now: nowMillis()) else {
            if region == configuration.region { return try await next(request, context) }
            throw OmniRunError(.invalidArgument, "no node is up in region '\(region)'")
        }
        if chosen.id == configuration.nodeID { return try await next(request, context) }
        return try await relay.forward(request, to: chosen.id, body: body)
    }

    static func region(_ value: Any?) throws -> String? {
        guard let value, !(value is NSNull) else { return nil }
        guard let text = value as? String, (1...40).contains(text.count),
            text.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" })
        else {
            throw OmniRunError(.invalidArgument, "region must be a region's name (a–z, 0–9 and '-')")
        }
        return text
    }

    /// The node for a new sandbox: of the nodes up and not draining in `region` (those with
    /// the template's snapshot, if any has it), the better of two picked at random, by the
    /// share of its vCPUs in use (running sandboxes and load) and then its free memory.
    static func choose(_ nodes: [NodeRecord], region: String, template: String, now: Int64) -> NodeRecord? {
        let candidates = nodes.filter { $0.region == region && $0.isUp(at: now) && !$0.draining }
        let holding = candidates.filter { $0.templates.contains(template) }
        let pool = holding.isEmpty ? candidates : holding
        guard let first = pool.randomElement() else { return nil }
        guard pool.count > 1 else { return first }
        var second = pool.randomElement()!
        while second.id == first.id { second = pool.randomElement()! }
        return score(first) <= score(second) ? first : second
    }

    /// Lower is better: busy vCPUs per vCPU, then less free memory per sandbox.
    static func score(_ node: NodeRecord) -> Double {
        let vcpus = Double(max(node.vcpus, 1))
        let busy = (Double(node.running) + node.load) / vcpus
        return busy - Double(node.memoryMB) / 1_000_000
    }
}
