import AsyncHTTPClient
import Foundation
import Hummingbird
import LLMUpstreams
import Logging
import NIOCore
import OmniRunError
import OmniRunStore

/// The OpenAI-compatible proxy: checks the caller's rate and budget, forwards to the
/// upstream that serves the model, passes the answer back (streams event by event),
/// and charges what the upstream reports (or what the price table says).
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

    func chat(_ request: Request, caller: Caller) async throws -> Response {
        do {
            try await limiter.admit(caller.account.id)
        } catch let limited as RequestRateLimiter.RateLimited {
            var response = APIError.response(limited.error)
            response.headers[.retryAfter] = "\(limited.retryAfterSeconds)"
            return response
        }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: configuration.maxRequestBytes)
        } catch {
            throw OmniRunError(.payloadTooLarge, "a chat request may be at most \(configuration.maxRequestBytes) bytes")
        }
        let chat = try ChatRequest.parse(Data(buffer: buffer))
        if configuration.freeTierOnly, caller.account.role != "owner", !configuration.freeTier.contains(chat.model) {
            throw OmniRunError(.forbidden, "\(chat.model) is not in the free tier (\(configuration.freeTier.joined(separator: ", ")))")
        }
        guard let route = router.route(chat.model) else {
            throw OmniRunError(.notFound, "no upstream serves the model \(chat.model); GET /llm/v1/models lists them")
        }
        try await ledger.requireBudget(caller.account)
        let body = try chat.upstreamBody(model: route.upstreamModel, requestCost: route.upstream.requestCost ?? false)
        let started = ContinuousClock.now
        let answer = try await client.chat(route.upstream, body: body, stream: chat.stream)
        guard (200..<300).contains(answer.status) else {
            throw await Self.upstreamError(answer, upstream: route.upstream)
        }
        let context = ChargeContext(
            proxy: self, caller: caller, model: chat.model, upstream: route.upstream.name,
            promptEstimate: Int64(chat.byteCount / 4), started: started)
        if chat.stream {
            return stream(answer, chat: chat, route: route, charge: context)
        }
        let bytes: ByteBuffer
        do {
            bytes = try await answer.body.collect(upTo: UpstreamClient.maxBodyBytes)
        } catch {
            throw UpstreamClient.failure(error, upstream: route.upstream)
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any]
        guard let object else {
            throw OmniRunError(.upstreamFailed, "upstream \(route.upstream.name) answered with something that is not JSON")
        }
        let completion = (object["choices"] as? [[String: Any]] ?? []).compactMap {
            ($0["message"] as? [String: Any])?["content"] as? String
        }.joined()
        await context.charge(usage: ChatUsage.from(object), completionCharacters: completion.count)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: bytes))
    }

    /// Passes the upstream's events on one by one as each completes. The final usage
    /// chunk the proxy asked for is dropped unless the client asked for it too.
    private func stream(_ answer: UpstreamClient.Answer, chat: ChatRequest, route: ModelRouter.Route, charge: ChargeContext)
        -> Response
    {
        let upstream = route.upstream
        let logger = self.logger
        return SSE.response { send in
            var splitter = SSEEventSplitter()
            var scan = StreamScan(clientWantsUsage: chat.clientWantsStreamUsage)
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
                    let event = ["error": ["message": failure.message, "type": failure.code.rawValue]]
                    try? await send(SSE.line(event))
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

        func charge(usage: ChatUsage?, completionCharacters: Int) async {
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

/// What the proxy learns from a stream as it passes: the usage and how much text came.
struct StreamScan {
    let clientWantsUsage: Bool
    var usage: ChatUsage?
    var contentCharacters = 0

    /// Notes what the event says; false for an event the client should not get.
    mutating func keep(_ event: [UInt8]) -> Bool {
        guard let data = SSEEventSplitter.data(of: event), data != "[DONE]",
            let object = (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any]
        else { return true }
        let choices = object["choices"] as? [[String: Any]] ?? []
        for choice in choices {
            if let content = (choice["delta"] as? [String: Any])?["content"] as? String { contentCharacters += content.count }
        }
        if let usage = ChatUsage.from(object) {
            self.usage = usage
            if !clientWantsUsage, choices.isEmpty { return false }
        }
        return true
    }
}
