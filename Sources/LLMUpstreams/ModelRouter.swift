/// Picks the upstream for a model: an exact id wins, then the longest `prefix*`
/// pattern, then an upstream that serves `"*"`. Ties go to the upstream listed first.
/// Asked for a protocol, it chooses among the upstreams that speak it.
public struct ModelRouter: Sendable {
    public let upstreams: [Upstream]

    public init(upstreams: [Upstream]) {
        self.upstreams = upstreams
    }

    public struct Route: Sendable, Equatable {
        public var upstream: Upstream
        /// The model id to send upstream.
        public var upstreamModel: String
    }

    public func route(_ model: String, speaking wire: LLMProtocol? = nil) -> Route? {
        var best: (upstream: Upstream, score: Int)? = nil
        for upstream in upstreams where wire.map(upstream.speaks) ?? true {
            for pattern in upstream.models {
                let score: Int
                if pattern == model {
                    score = Int.max
                } else if pattern == "*" {
                    score = 0
                } else if pattern.hasSuffix("*"), model.hasPrefix(pattern.dropLast()) {
                    score = pattern.count
                } else {
                    continue
                }
                if best == nil || score > best!.score { best = (upstream, score) }
            }
        }
        guard let chosen = best?.upstream else { return nil }
        return Route(upstream: chosen, upstreamModel: Self.upstreamModel(model, stripPrefix: chosen.stripPrefix ?? false))
    }

    static func upstreamModel(_ model: String, stripPrefix: Bool) -> String {
        guard stripPrefix, let slash = model.firstIndex(of: "/") else { return model }
        return String(model[model.index(after: slash)...])
    }

    /// Whether some upstream names this id or pattern explicitly (for the model list).
    public func explicitModels() -> [(model: String, upstream: Upstream)] {
        upstreams.flatMap { upstream in
            upstream.models.filter { !$0.hasSuffix("*") }.map { ($0, upstream) }
        }
    }
}

/// Prices by exact model id, then the longest `prefix*`, then `"*"`.
public struct PriceTable: Sendable {
    public let prices: [String: ModelPrice]

    public init(prices: [String: ModelPrice]) {
        self.prices = prices
    }

    public func price(for model: String) -> ModelPrice? {
        if let exact = prices[model] { return exact }
        let prefixed = prices.filter { $0.key.hasSuffix("*") && $0.key != "*" && model.hasPrefix($0.key.dropLast()) }
        if let best = prefixed.max(by: { $0.key.count < $1.key.count }) { return best.value }
        return prices["*"]
    }

    /// Millionths of a cent for this many tokens (a price is cents per million tokens).
    public func costMicrocents(model: String, promptTokens: Int64, completionTokens: Int64) -> Int64? {
        guard let price = price(for: model) else { return nil }
        let cost = price.input * Double(max(0, promptTokens)) + price.output * Double(max(0, completionTokens))
        return Int64(cost.rounded(.up))
    }
}
