import Hummingbird
import OmniRunError

/// `/llm/v1/*`: the OpenAI-compatible proxy, authenticated with the same `omr_` keys
/// (and, from inside a sandbox, as the sandbox's owner).
struct LLMController {
    let proxy: LLMProxy

    func register(on router: Router<AppRequestContext>) {
        router.post("/llm/v1/chat/completions") { request, context -> Response in
            try await proxy.chat(
                request, caller: LLMProxy.Caller(account: try context.requireAccount(), sandboxID: context.gatewaySandboxID))
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
    }
}
