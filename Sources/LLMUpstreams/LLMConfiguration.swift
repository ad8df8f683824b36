import Foundation
import OmniRunError

/// One server the proxy forwards to (an aggregator such as OpenRouter, a vLLM or LiteLLM
/// server, OpenAI, Anthropic), with the protocols it speaks.
public struct Upstream: Sendable, Codable, Equatable {
    /// A short name for logs and the usage ledger.
    public var name: String
    /// The API root, e.g. `https://openrouter.ai/api/v1` or `https://api.anthropic.com/v1`
    /// (`/chat/completions`, `/messages`, `/responses` and `/models` are appended).
    public var baseURL: String
    /// The key, sent as `x-api-key` with Anthropic Messages and as `Authorization: Bearer`
    /// otherwise. Prefer `apiKeyEnv` so the config file holds no secret.
    public var apiKey: String?
    /// Name of an environment variable holding the key.
    public var apiKeyEnv: String?
    /// Models this upstream serves: exact ids, prefixes ending in `*` (`"openai/*"`), or `"*"` for everything else.
    public var models: [String]
    /// Sends `vendor/model` as `model` (false) or only the part after the first `/` (true).
    public var stripPrefix: Bool?
    /// Asks for the cost in `usage` (OpenRouter's `"usage": {"include": true}`); only for upstreams that accept it.
    public var requestCost: Bool?
    /// Seconds to wait for the answer to start, and at most between two streamed chunks.
    public var timeoutSeconds: Double?
    /// The protocols it speaks (`"chat"`, `"messages"`, `"responses"`); default `["chat"]`.
    public var protocols: [LLMProtocol]?

    public init(
        name: String, baseURL: String, apiKey: String? = nil, apiKeyEnv: String? = nil, models: [String],
        stripPrefix: Bool? = nil, requestCost: Bool? = nil, timeoutSeconds: Double? = nil, protocols: [LLMProtocol]? = nil
    ) {
        self.name = name
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.apiKeyEnv = apiKeyEnv
        self.models = models
        self.stripPrefix = stripPrefix
        self.requestCost = requestCost
        self.timeoutSeconds = timeoutSeconds
        self.protocols = protocols
    }

    /// Whether it speaks `wire` (an upstream that names none speaks chat completions).
    public func speaks(_ wire: LLMProtocol) -> Bool {
        (protocols ?? [.chatCompletions]).contains(wire)
    }

    public var spokenProtocols: [LLMProtocol] { protocols ?? [.chatCompletions] }

    /// The key to send: `apiKey`, else the variable `apiKeyEnv` names.
    public func resolvedKey(environment: [String: String]) -> String? {
        if let apiKey, !apiKey.isEmpty { return apiKey }
        if let name = apiKeyEnv, let value = environment[name], !value.isEmpty { return value }
        return nil
    }

    public var root: String {
        baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
    }
}

/// What one token costs, in cents per million tokens (that is, millionths of a cent per token).
public struct ModelPrice: Sendable, Codable, Equatable {
    public var input: Double
    public var output: Double

    public init(input: Double, output: Double) {
        self.input = input
        self.output = output
    }
}

/// Everything the LLM proxy is told: upstreams, free tier, prices and limits. Read from
/// a JSON file (`OMNIRUN_LLM_CONFIG`, default `<data>/llm.json` when it exists), then
/// overridden by the environment (`OMNIRUN_LLM_*`).
public struct LLMConfiguration: Sendable, Codable, Equatable {
    public var upstreams: [Upstream]
    /// Models of the free tier (marked in `/llm/v1/models`; see `freeTierOnly`).
    public var freeTier: [String]
    /// Prices by exact model id or `prefix*`, with `"*"` as the fallback, for upstreams that
    /// do not report what a request cost.
    public var prices: [String: ModelPrice]
    /// Per-account spend cap for accounts without their own (docs: €5.00).
    public var spendCapCents: Int64
    /// Proxied requests per account per minute (0: unlimited).
    public var requestsPerMinute: Int
    /// When true, accounts other than the owner may only call free-tier models.
    public var freeTierOnly: Bool
    /// Largest chat request body.
    public var maxRequestBytes: Int
    /// Default for upstreams that set no `timeoutSeconds`.
    public var timeoutSeconds: Double

    /// The five models the docs list as the free tier.
    public static let documentedFreeTier = [
        "openai/gpt-4o-mini", "anthropic/claude-sonnet-4.6", "google/gemini-3.1-pro-preview", "kilo-auto/balanced",
        "kilo-auto/free",
    ]

    /// List prices (USD cents per million tokens) for the free tier, and a fallback for
    /// unknown models that errs on the expensive side.
    public static let defaultPrices: [String: ModelPrice] = [
        "openai/gpt-4o-mini": ModelPrice(input: 15, output: 60),
        "anthropic/claude-sonnet-4.6": ModelPrice(input: 300, output: 1500),
        "google/gemini-3.1-pro-preview": ModelPrice(input: 200, output: 1200),
        "kilo-auto/balanced": ModelPrice(input: 100, output: 500),
        "kilo-auto/free": ModelPrice(input: 0, output: 0),
        "*": ModelPrice(input: 300, output: 1500),
    ]

    public init(
        upstreams: [Upstream] = [], freeTier: [String] = LLMConfiguration.documentedFreeTier,
        prices: [String: ModelPrice] = LLMConfiguration.defaultPrices, spendCapCents: Int64 = 500,
        requestsPerMinute: Int = 60, freeTierOnly: Bool = false, maxRequestBytes: Int = 4 << 20, timeoutSeconds: Double = 120
    ) {
        self.upstreams = upstreams
        self.freeTier = freeTier
        self.prices = prices
        self.spendCapCents = spendCapCents
        self.requestsPerMinute = requestsPerMinute
        self.freeTierOnly = freeTierOnly
        self.maxRequestBytes = maxRequestBytes
        self.timeoutSeconds = timeoutSeconds
    }

    enum CodingKeys: String, CodingKey {
        case upstreams, freeTier, prices, spendCapCents, requestsPerMinute, freeTierOnly, maxRequestBytes, timeoutSeconds
    }

    /// Every key is optional in the file; missing ones keep their defaults.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = LLMConfiguration()
        upstreams = try container.decodeIfPresent([Upstream].self, forKey: .upstreams) ?? defaults.upstreams
        freeTier = try container.decodeIfPresent([String].self, forKey: .freeTier) ?? defaults.freeTier
        // Prices in the file add to (and override) the built-in ones.
        prices = defaults.prices.merging(
            try container.decodeIfPresent([String: ModelPrice].self, forKey: .prices) ?? [:]) { $1 }
        spendCapCents = try container.decodeIfPresent(Int64.self, forKey: .spendCapCents) ?? defaults.spendCapCents
        requestsPerMinute = try container.decodeIfPresent(Int.self, forKey: .requestsPerMinute) ?? defaults.requestsPerMinute
        freeTierOnly = try container.decodeIfPresent(Bool.self, forKey: .freeTierOnly) ?? defaults.freeTierOnly
        maxRequestBytes = try container.decodeIfPresent(Int.self, forKey: .maxRequestBytes) ?? defaults.maxRequestBytes
        timeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? defaults.timeoutSeconds
    }

    /// Reads the file (if any), then applies the environment:
    /// - `OMNIRUN_LLM_CONFIG`: the JSON file (default `<dataDirectory>/llm.json` when it exists)
    /// - `OMNIRUN_LLM_UPSTREAM_URL`, `OMNIRUN_LLM_UPSTREAM_KEY`: one more upstream serving every model (`"*"`),
    ///   speaking the protocols in `OMNIRUN_LLM_UPSTREAM_PROTOCOLS` (comma-separated, default `chat`)
    /// - `OMNIRUN_LLM_SPEND_CAP_CENTS`, `OMNIRUN_LLM_RATE_LIMIT` (requests per minute),
    ///   `OMNIRUN_LLM_TIMEOUT` (seconds), `OMNIRUN_LLM_FREE_TIER` (comma-separated),
    ///   `OMNIRUN_LLM_FREE_TIER_ONLY` (1/0)
    public static func load(dataDirectory: String, environment: [String: String]) throws -> LLMConfiguration {
        var configuration = LLMConfiguration()
        let explicit = environment["OMNIRUN_LLM_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        let path = explicit ?? dataDirectory + "/llm.json"
        if FileManager.default.fileExists(atPath: path) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw OmniRunError(.invalidArgument, "cannot read the LLM configuration \(path)")
            }
            do {
                configuration = try JSONDecoder().decode(LLMConfiguration.self, from: data)
            } catch {
                throw OmniRunError(.invalidArgument, "the LLM configuration \(path) is not valid: \(error)")
            }
        } else if let explicit {
            throw OmniRunError(.invalidArgument, "the LLM configuration \(explicit) does not exist")
        }
        if let url = environment["OMNIRUN_LLM_UPSTREAM_URL"], !url.isEmpty {
            let protocols = try environment["OMNIRUN_LLM_UPSTREAM_PROTOCOLS"].map { try LLMProtocol.list($0) }
            configuration.upstreams.append(
                Upstream(
                    name: "default", baseURL: url, apiKeyEnv: "OMNIRUN_LLM_UPSTREAM_KEY", models: ["*"],
                    protocols: protocols?.isEmpty == false ? protocols : nil))
        }
        if let cap = environment["OMNIRUN_LLM_SPEND_CAP_CENTS"].flatMap({ Int64($0) }) { configuration.spendCapCents = cap }
        if let rate = environment["OMNIRUN_LLM_RATE_LIMIT"].flatMap({ Int($0) }) { configuration.requestsPerMinute = rate }
        if let timeout = environment["OMNIRUN_LLM_TIMEOUT"].flatMap({ Double($0) }) { configuration.timeoutSeconds = timeout }
        if let free = environment["OMNIRUN_LLM_FREE_TIER"] {
            configuration.freeTier = free.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
        }
        if let only = environment["OMNIRUN_LLM_FREE_TIER_ONLY"] { configuration.freeTierOnly = only == "1" || only == "true" }
        try configuration.validate()
        return configuration
    }

    public func validate() throws {
        var names: Set<String> = []
        for upstream in upstreams {
            guard let url = URL(string: upstream.baseURL), let scheme = url.scheme, ["http", "https"].contains(scheme),
                url.host != nil
            else {
                throw OmniRunError(.invalidArgument, "upstream \(upstream.name): baseURL must be an http(s) URL")
            }
            guard !upstream.models.isEmpty else {
                throw OmniRunError(.invalidArgument, "upstream \(upstream.name): list the models it serves (or \"*\")")
            }
            guard upstream.protocols?.isEmpty != true else {
                throw OmniRunError(.invalidArgument, "upstream \(upstream.name): protocols must name at least one (chat, messages, responses)")
            }
            guard names.insert(upstream.name).inserted else {
                throw OmniRunError(.invalidArgument, "two upstreams are named \(upstream.name)")
            }
        }
        guard spendCapCents >= 0, requestsPerMinute >= 0, timeoutSeconds > 0, maxRequestBytes > 0 else {
            throw OmniRunError(.invalidArgument, "LLM limits must not be negative")
        }
    }
}
