import Hummingbird
import OmniRunControl

/// The E2B-compatible endpoint, always on under `/e2b` of the API's port: E2B's control API
/// (`E2B_API_URL`), and envd and the code interpreter for every sandbox (`E2B_SANDBOX_URL`,
/// the sandbox named by the `E2b-Sandbox-Id` header). See docs/e2b-compatibility.md.
enum E2BRoutes {
    static let prefix = "/e2b"

    static func collection(_ control: ControlPlane, relay: NodeRelay?) -> RouteCollection<AppRequestContext> {
        let access = E2BAccess(key: control.e2bKey, accounts: control.accounts, service: control.sandboxes, e2ee: control.e2ee)
        let routes = RouteCollection(context: AppRequestContext.self)
        routes.add(middleware: E2BMiddleware(access: access, relay: relay))
        routes.addRoutes(
            E2BControlController(creation: control.creation, access: access, samples: control.samples, configuration: control.configuration)
                .routes)
        routes.addRoutes(E2BProcessRPC(access: access, configuration: control.configuration).routes)
        routes.addRoutes(E2BFilesystemRPC(access: access, watchers: E2BWatchers()).routes)
        routes.addRoutes(E2BEnvdHTTP(access: access).routes)
        routes.addRoutes(E2BInterpreter(access: access, defaults: E2BDefaultContexts(), configuration: control.configuration).routes)
        return routes
    }
}
