import Hummingbird
import OmniRunError

/// Template routes: the catalogue with each template's resources and build state.
struct TemplateController {
    let service: TemplateService

    func register(on router: Router<AppRequestContext>) {
        router.get("/templates", use: list)
        router.get("/templates/:name", use: info)
    }

    /// A bare JSON array, like `GET /sandboxes`.
    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireAccount()
        return JSON.response(await service.list())
    }

    @Sendable func info(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireAccount()
        return JSON.response(try await service.find(try context.parameters.require("name")))
    }
}
