import Foundation
import LLMUpstreams
import Logging

/// `GET /llm/v1/models`: the free tier, the models the configuration names, and what
/// each upstream lists that routes to it. Cached for a few minutes.
package actor ModelCatalog {
    package struct Model: Encodable, Sendable {
        package var id: String
        package var object = "model"
        package var created: Int64 = 0
        package var owned_by: String
        package var free_tier: Bool
    }

    package nonisolated let router: ModelRouter
    package nonisolated let client: UpstreamClient
    package nonisolated let freeTier: Set<String>
    package nonisolated let logger: Logger
    private var cache: (until: ContinuousClock.Instant, models: [Model])?

    package init(router: ModelRouter, client: UpstreamClient, freeTier: [String], logger: Logger) {
        self.router = router
        self.client = client
        self.freeTier = Set(freeTier)
        self.logger = logger
    }

    package func models() async -> [Model] {
        if let cache, ContinuousClock.now < cache.until { return cache.models }
        var complete = true
        var seen: Set<String> = []
        var models: [Model] = []
        func add(_ id: String, _ upstream: Upstream) {
            guard seen.insert(id).inserted else { return }
            let vendor = id.firstIndex(of: "/").map { String(id[..<$0]) } ?? upstream.name
            models.append(Model(id: id, owned_by: vendor, free_tier: freeTier.contains(id)))
        }
        for id in freeTier.sorted() { if let route = router.route(id) { add(id, route.upstream) } }
        for (id, upstream) in router.explicitModels() where id != "*" { add(id, upstream) }
        for upstream in router.upstreams {
            do {
                let prefixes = upstream.models.filter { $0.hasSuffix("*") && $0 != "*" }.map { String($0.dropLast()) }
                for listed in try await client.models(upstream) {
                    let id = (upstream.stripPrefix ?? false) && prefixes.count == 1 ? prefixes[0] + listed : listed
                    if router.route(id)?.upstream.name == upstream.name { add(id, upstream) }
                }
            } catch {
                complete = false
                logger.warning("an upstream did not list its models", metadata: ["upstream": "\(upstream.name)", "error": "\(error)"])
            }
        }
        cache = (ContinuousClock.now + (complete ? .seconds(300) : .seconds(30)), models)
        return models
    }
}
