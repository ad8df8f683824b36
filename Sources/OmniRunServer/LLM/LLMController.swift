import Hummingbird
import LLMUpstreams
import OmniRunControl
import OmniRunError

/// `/llm/v1/*`: the LLM proxy in three protocols (OpenAI chat completions, Anthropic
/// Messages, OpenAI Responses), authenticated with the same `omr_` keys (`X-API-Key`, which
/// Anthropic's clients send as `x-api-key`, or `Authorization: Bearer`) and, from inside a
/// sandbox, as the sandbox's owner.
struct LLMController {
    let proxy: LLMProxy

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        let routes: [(path: String, wire: LLMProtocol, countTokens: Bool)] = [
            ("/llm/v1/chat/completions", .chatCompletions, false),
            ("/llm/v1/messages", .messages, false),
            ("/llm/v1/messages/count_tokens", .messages, true),
            ("/llm/v1/responses", .responses, false),
        ]
        for route in routes {
            router.post(RouterPath(route.path)) { request, context -> Response in
                try await proxy.forward(
                    request, wire: route.wire, countTokens: route.countTokens,
                    caller: LLMProxy.Caller(account: try context.requireAccount(), sandboxID: context.gatewaySandboxID))
            }
        }
        router.get("/llm/v1/models") { _, context -> Response in
            _ = try context.requireAccount()
            struct List: Encodable {
                var object = "list"
                var data: [ModelCatalog.Model]
            }
            return JSON.response(List(data: await proxy.catalog.models()))
        }
        router.get("/llm/v1/usage") { _, context -> Response in
            JSON.response(try await proxy.ledger.usage(try context.requireAccount()))
        }
        router.get("/llm/v1/usage/daily") { request, context -> Response in
            let account = try context.requireAccount()
            let days = try SpendLedger.historyDays(request.uri.queryParameters["days"].map(String.init))
            return JSON.response(try await proxy.ledger.daily(account, days: days))
        }
        return router
    }
}
