import AsyncHTTPClient
import Foundation
import Hummingbird
import LLMUpstreams
import Logging
import NIOCore
import OmniRunControl
import OmniRunError
import OmniRunStore

/// The LLM proxy, in three protocols (OpenAI chat completions, Anthropic Messages, OpenAI
/// Responses): checks the caller's rate and budget, forwards to an upstream that serves the
/// model in the request's protocol, passes the answer back (streams event by event), and
/// charges what the upstream reports (or what the price table says). The protocols' rules
/// live in LLMUpstreams (`LLMRequest`, `LLMStreamScan`); this type only routes and charges.
struct LLMProxy: Sendable {
    let configuration: LLMConfiguration
    let router: ModelRouter
    let prices: PriceTable
    let client: UpstreamClient
    let ledger: SpendLedger
    let limiter: RequestRateLimiter
    let catalog: ModelCatalog
    let logger: Logger

    init(configuration: LLMConfiguration, client: UpstreamClient, ledger: SpendLedger, logger: Logger) {
        self.configuration = configuration
        self.router = ModelRouter(upstreams: configuration.upstreams)
        self.prices = PriceTable(prices: configuration.prices)
        self.client = client
        self.ledger = ledger
        self.limiter = RequestRateLimiter(perMinute: configuration.requestsPerMinute)
        self.catalog = ModelCatalog(router: router, client: client, freeTier: configuration.freeTier, logger: logger)
        self.logger = logger
    }

    /// Who is asking: the account, and the sandbox when the call came through one.
    struct Caller: Sendable {
        var account: AccountRecord
        var sandboxID: String?
    }

    /// Proxies one request of `wire` (the protocol of the path it came to; `countTokens`:
    /// Anthropic's token count, which is passed through and not charged).
    func forward(_ request: Request, wire: LLMProtocol, countTokens: Bool = false, caller: Caller) async throws -> Response {
        do {
            try await limiter.admit(caller.account.id)
        } catch let limited as RequestRateLimiter.RateLimited {
            var response = APIError.response(limited.error)
            response.headers[.retryAfter] = "\(limited.retryAfterSeconds)"
            return response
        }
        var request = request
        let buffer = try await JSON.collect(
            &request, limit: configuration.maxRequestBytes, message: "an LLM request may be at most \(configuration.maxRequestBytes) bytes")
        let parsed = try LLMRequest.parse(Data(buffer: buffer), wire: wire, countTokens: countTokens)
        let headers =
            wire == .messages
            ? try MessagesHeaders.forward(
                version: request.headers[.init("anthropic-version")!], beta: request.headers[.init("anthropic-beta")!])
            : []
        if configuration.freeTierOnly, caller.account.role != .owner, !configuration.freeTier.contains(parsed.model) {
            throw OmniRunError(.forbidden, "\(parsed.model) is not in the free tier (\(configuration.freeTier.joined(separator: ", ")))")
        }
        let route = try self.route(parsed.model, wire: wire)
        try await ledger.requireBudget(caller.account)
        let body = try parsed.upstreamBody(model: route.upstreamModel, requestCost: route.upstream.requestCost ?? false)
        let started = ContinuousClock.now
        let answer = try await client.send(
            route.upstream, wire: wire, body: ByteBuffer(bytes: body), stream: parsed.stream, countTokens: countTokens, headers: headers)
        guard (200..<300).contains(answer.status) else {
            throw await Self.upstreamError(answer, upstream: route.upstream)
        }
        let context = ChargeContext(
            proxy: self, caller: caller, model: parsed.model, upstream: route.upstream.name,
            promptEstimate: Int64(parsed.byteCount / 4), started: started)
        if parsed.stream {
            return stream(answer, request: parsed, route: route, charge: context)
        }
        let bytes: ByteBuffer
        do {
            bytes = try await answer.body.collect(upTo: UpstreamClient.maxBodyBytes)
        } catch {
            throw UpstreamClient.failure(error, upstream: route.upstream)
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] else {
            throw OmniRunError(.upstreamFailed, "upstream \(route.upstream.name) answered with something that is not JSON")
        }
        if !countTokens {
            let (usage, characters) = parsed.answer(object)
            await context.charge(usage: usage, completionCharacters: characters)
        }
        var responseHeaders = HTTPFields()
        responseHeaders[.contentType] = "application/json"
        return Response(status: .ok, headers: responseHeaders, body: ResponseBody(byteBuffer: bytes))
    }

    /// The upstream for `model` among those speaking `wire`: 404 when none serves the model,
    /// 400 when the ones that do speak other protocols.
    func route(_ model: String, wire: LLMProtocol) throws -> ModelRouter.Route {
        if let route = router.route(model, speaking: wire) { return route }
        guard let other = router.route(model) else {
            throw OmniRunError(.notFound, "no upstream serves the model \(model); GET /llm/v1/models lists them")
        }
        let spoken = other.upstream.spokenProtocols
        throw OmniRunError(
            .invalidArgument,
            "the model \(model) is served by upstream \(other.upstream.name), which does not speak the \(wire) protocol; "
                + "send it to " + spoken.map { "/llm/v1" + $0.path + " (\($0))" }.joined(separator: " or "))
    }

    /// Passes the upstream's events on one by one as each completes.
    private func stream(_ answer: UpstreamClient.Answer, request: LLMRequest, route: ModelRouter.Route, charge: ChargeContext)
        -> Response
    {
        let upstream = route.upstream
        let logger = self.logger
        return SSE.response { send in
            var splitter = SSEEventSplitter()
            var scan = LLMStreamScan(wire: request.wire, clientWantsUsage: request.clientWantsStreamUsage)
            do {
                for try await chunk in answer.body {
                    for event in try splitter.feed(chunk.readableBytesView) where scan.keep(event) {
                        try await send(ByteBuffer(bytes: event))
                    }
                }
                if let rest = splitter.finish(), scan.keep(rest) {
                    try await send(ByteBuffer(bytes: rest + Array("\n\n".utf8)))
                }
            } catch {
                let failure = UpstreamClient.failure(error, upstream: upstream)
                logger.warning("an LLM stream ended early", metadata: ["upstream": "\(upstream.name)", "error": "\(failure.message)"])
                if failure.code != .unavailable {
                    try? await send(ByteBuffer(bytes: scan.failureEvent(failure)))
                }
            }
            // Charged even when the client went away: the upstream did the work.
            let usage = scan.usage
            let characters = scan.contentCharacters
            await Task { await charge.charge(usage: usage, completionCharacters: characters) }.value
        }
    }

    /// Everything needed to charge one request once it is done.
    struct ChargeContext: Sendable {
        let proxy: LLMProxy
        let caller: Caller
        let model: String
        let upstream: String
        let promptEstimate: Int64
        let started: ContinuousClock.Instant

        func charge(usage: LLMUsage?, completionCharacters: Int) async {
            let prompt = usage?.promptTokens ?? promptEstimate
            let completion = usage?.completionTokens ?? Int64((completionCharacters + 3) / 4)
            let cost: Int64
            let source: String
            if let reported = usage?.reportedMicrocents {
                (cost, source) = (reported, "upstream")
            } else {
                cost = proxy.prices.costMicrocents(model: model, promptTokens: prompt, completionTokens: completion) ?? 0
                source = usage == nil ? "estimate" : "price-table"
            }
            let record = LLMUsageRecord(
                id: randomID("llm_", bytes: 10), accountID: caller.account.id, sandboxID: caller.sandboxID, model: model,
                upstream: upstream, promptTokens: prompt, completionTokens: completion, costMicrocents: cost, costSource: source,
                createdAt: nowMillis())
            do {
                try await proxy.ledger.charge(record)
            } catch {
                proxy.logger.error("an LLM request could not be charged", metadata: ["account": "\(caller.account.id)", "error": "\(error)"])
            }
            proxy.logger.info(
                "llm request",
                metadata: [
                    "account": "\(caller.account.id)", "sandbox": "\(caller.sandboxID ?? "-")", "model": "\(model)",
                    "upstream": "\(upstream)", "prompt_tokens": "\(prompt)", "completion_tokens": "\(completion)",
                    "cost_microcents": "\(cost)", "cost_source": "\(source)", "duration": "\(ContinuousClock.now - started)",
                ])
        }
    }

    /// An upstream's non-2xx answer as the API's error: the client's mistakes stay 4xx,
    /// the upstream's own failures become 502.
    static func upstreamError(_ answer: UpstreamClient.Answer, upstream: Upstream) async -> OmniRunError {
        let bytes = (try? await answer.body.collect(upTo: 64 << 10)).map { Data(buffer: $0) } ?? Data()
        var detail = String(decoding: bytes.prefix(500), as: UTF8.self)
        if let object = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any] {
            if let error = object["error"] as? [String: Any], let message = error["message"] as? String {
                detail = message
            } else if let message = object["message"] as? String {
                detail = message
            } else if let error = object["error"] as? String {
                detail = error
            }
        }
        let name = upstream.name
        switch answer.status {
        case 400, 422: return OmniRunError(.invalidArgument, "upstream \(name) rejected the request: \(detail)")
        case 404: return OmniRunError(.notFound, "upstream \(name): \(detail)")
        case 413: return OmniRunError(.payloadTooLarge, "upstream \(name): \(detail)")
        case 429: return OmniRunError(.limitReached, "upstream \(name) is rate-limiting: \(detail)")
        default: return OmniRunError(.upstreamFailed, "upstream \(name) answered \(answer.status): \(detail)")
        }
    }
}
