import Foundation
import Hummingbird
import OmniRunControl
import OmniRunStore

/// `GET /sandboxes/{id}/metrics` (wire protocol §4.9, the array form) and the
/// server's own Prometheus `GET /metrics`.
struct MetricsController {
    let service: SandboxService
    let samples: MetricsRepository
    let spend: SpendRepository
    let terminals: PTYSessions

    /// One item of the array; `host_*` are the VMM as the host sees it (extra fields the SDK ignores).
    struct Item: Encodable {
        var timestamp: String
        var cpu_used_pct: Double
        var cpu_count: Int
        var mem_used: Int64
        var mem_total: Int64
        var disk_used: Int64
        var disk_total: Int64
        var host_cpu_pct: Double
        var host_mem_rss: Int64

        init(_ sample: MetricsSample) {
            timestamp = isoDate(sample.at)
            cpu_used_pct = (sample.cpuUsedPct * 100).rounded() / 100
            cpu_count = sample.cpuCount
            mem_used = sample.memUsed
            mem_total = sample.memTotal
            disk_used = sample.diskUsed
            disk_total = sample.diskTotal
            host_cpu_pct = (sample.hostCPUPct * 100).rounded() / 100
            host_mem_rss = sample.hostRSS
        }
    }

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.get("/sandboxes/:id/metrics", use: sandboxMetrics)
        router.get("/metrics", use: prometheus)
        return router
    }

    /// Every sample kept (oldest first; `limit` keeps the newest, default 1000). A paused
    /// sandbox answers the samples it had.
    @Sendable func sandboxMetrics(_ request: Request, context: AppRequestContext) async throws -> Response {
        let record = try await service.record(try context.parameters.require("id"), account: try context.requireAccount())
        let limit = try SandboxController.limit(request.query["limit"], default: 1000)
        return JSON.response(try await samples.samples(sandboxID: record.id, limit: limit).map(Item.init))
    }

    @Sendable func prometheus(_ request: Request, context: AppRequestContext) async throws -> Response {
        let running = await service.runningCount()
        let paused = await service.pausedUsage()
        let pooled = await service.poolSizes()
        let spent = (try? await spend.totalSpendMicrocents()) ?? 0
        let terminal = await terminals.totalUsage()
        let text = service.metrics.exposition(gauges: [
            (
                "omnirun_sandboxes", "Sandboxes on this node by state.",
                [("{state=\"running\"}", Double(running)), ("{state=\"paused\"}", Double(paused.count))]
            ),
            ("omnirun_paused_disk_bytes", "Disk used by paused sandboxes (saved state and disk).", [("", Double(paused.bytes))]),
            (
                "omnirun_warm_pool_machines", "Restored machines waiting in the warm pool, by template.",
                pooled.map { ("{template=\"\($0.key)\"}", Double($0.value.ready)) }
            ),
            (
                "omnirun_warm_pool_target", "Machines the warm pool aims to hold, by template (it follows demand under auto).",
                pooled.map { ("{template=\"\($0.key)\"}", Double($0.value.target)) }
            ),
            ("omnirun_terminal_sessions", "PTY sessions the server keeps (live and ended, not yet removed).", [("", Double(terminal.sessions))]),
            ("omnirun_terminal_buffered_bytes", "PTY output buffered on the server until read.", [("", Double(terminal.bytes))]),
            (
                "omnirun_llm_spend_cents", "LLM spend of every account together, in cents (monotonic unless reset).",
                [("", Double(spent) / 1_000_000)]
            ),
        ])
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: .init(string: text)))
    }
}
