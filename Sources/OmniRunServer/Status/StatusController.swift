import Foundation
import Hummingbird
import OmniRunControl
import OmniRunCore

/// `GET /status` (open) and `GET /openapi.json` (open).
struct StatusController {
    let service: SandboxService
    let configuration: ServerConfiguration

    /// Open to anyone: it names built-in templates only (never an account's custom ones).
    struct Status: Encodable {
        var ok: Bool
        var node_id: String
        var region: String
        /// Set while `omnirun node drain` holds new sandboxes off this node.
        var draining: Bool
        var active_sandboxes: Int
        var max_sandboxes: Int
        var templates: [String]
        var version: String
        var driver: String
        /// Restored machines waiting per template.
        var warm_pool: [String: Int]
        /// What the pool aims for per template now (it follows demand under `auto`).
        var warm_pool_target: [String: Int]
        /// `auto (min …, max …, memory … MiB)` or the fixed size.
        var warm_pool_policy: String
        /// Paused sandboxes (no VMM running) and the disk their saved states and disks use.
        var paused_sandboxes: Int
        var paused_disk_bytes: Int64
    }

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.get("/status") { _, _ -> Response in
            let templates = service.runtime.catalog.builtInTemplates()
            let withAliases = templates.contains("playground")
                ? templates + ImageCatalogAliases.names.filter { !templates.contains($0) } : templates
            var pool: [String: Int] = [:]
            var target: [String: Int] = [:]
            for template in templates {
                let figures = await service.runtime.poolFigures(template)
                pool[template] = figures?.ready ?? 0
                target[template] = figures?.target ?? 0
            }
            let paused = await service.pausedUsage()
            return JSON.response(
                Status(
                    ok: true, node_id: configuration.nodeID, region: configuration.region, draining: await service.draining,
                    active_sandboxes: await service.runningCount(),
                    max_sandboxes: configuration.maxSandboxes, templates: withAliases.sorted(), version: OmniRunVersion.current,
                    driver: service.runtime.driver.description, warm_pool: pool,
                    warm_pool_target: target, warm_pool_policy: service.runtime.configuration.warmPool.description,
                    paused_sandboxes: paused.count,
                    paused_disk_bytes: paused.bytes))
        }
        router.get("/openapi.json") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: .init(bytes: OpenAPIDocument.json)))
        }
        return router
    }
}

enum ImageCatalogAliases {
    static let names = ["python-3.11"]
}
