import Foundation
import Hummingbird
import OmniRunControl
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// E2B's control API (`E2B_API_URL`) over OmniRun's sandboxes: E2B's paths, field names,
/// status codes and `{"code", "message"}` errors (docs/e2b-compatibility.md).
struct E2BControlController {
    let creation: SandboxCreation
    let access: E2BAccess
    let samples: MetricsRepository
    let configuration: ServerConfiguration
    var service: SandboxService { creation.service }

    /// The envd version the endpoint reports. The SDK gates calls on it: 0.5.7 has stdin
    /// control, octet-stream uploads and recursive watches; write metadata (0.6.2) and
    /// watches with entries (0.6.3) or network mounts (0.6.4) are refused by the SDK itself.
    static let envdVersion = "0.5.7"

    /// E2B's template names that map onto OmniRun's templates.
    static let templateNames = ["base": "playground", "code-interpreter-v1": "playground", "code-interpreter": "playground"]

    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        for prefix in ["/sandboxes", "/v2/sandboxes"] {
            router.post(RouterPath(prefix), use: create)
            router.get(RouterPath(prefix), use: list)
            router.post(RouterPath(prefix + "/:id/connect"), use: connect)
        }
        router.get("/sandboxes/:id", use: info)
        router.delete("/sandboxes/:id", use: kill)
        router.post("/sandboxes/:id/timeout", use: setTimeout)
        router.post("/sandboxes/:id/refreshes", use: refresh)
        router.post("/sandboxes/:id/pause", use: pause)
        router.post("/sandboxes/:id/resume", use: resume)
        router.get("/sandboxes/:id/metrics", use: metrics)
        // What the endpoint does not map: a clear 501 naming OmniRun's way, never a silent ignore.
        let unsupported: [(HTTPRequest.Method, String, String)] = [
            (.post, "/sandboxes/:id/fork", "forking (OmniRun's POST /sandboxes/{id}/fork)"),
            (.post, "/sandboxes/:id/snapshots", "snapshots (OmniRun's pause and fork)"),
            (.get, "/snapshots", "snapshots (OmniRun's pause and fork)"),
            (.put, "/sandboxes/:id/network", "network updates (OmniRun's POST /sandboxes/{id}/network-policy)"),
            (.get, "/templates", "templates (OmniRun's GET /templates)"),
            (.post, "/templates", "template builds (OmniRun's POST /templates)"),
            (.post, "/v2/templates", "template builds (OmniRun's POST /templates)"),
            (.post, "/v3/templates", "template builds (OmniRun's POST /templates)"),
            (.delete, "/templates/:id", "templates (OmniRun's DELETE /templates/{name})"),
        ]
        for (method, path, feature) in unsupported {
            router.on(RouterPath(path), method: method) { _, _ -> Response in
                throw OmniRunError(.notImplemented, "the E2B-compatible endpoint does not offer \(feature)")
            }
        }
        return router
    }

    struct CreateBody: Decodable {
        var templateID: String?
        var timeout: Int64?
        var metadata: [String: String]?
        var envVars: [String: String]?
        var autoPause: Bool?
        var autoPauseMemory: Bool?
        var autoResume: AutoResume?
        var allow_internet_access: Bool?
        var secure: Bool?
        var network: AnyJSON?
        var mcp: AnyJSON?
        var iam: AnyJSON?
        var volumeMounts: AnyJSON?

        struct AutoResume: Decodable {
            var enabled: Bool?
        }
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(CreateBody.self, from: request, limit: configuration.maxJSONBody)
        if body.mcp != nil { throw OmniRunError(.notImplemented, "MCP gateways (mcp) are not offered by OmniRun") }
        if body.volumeMounts != nil { throw OmniRunError(.notImplemented, "volume mounts (volumeMounts) are not offered by OmniRun") }
        if body.iam != nil { throw OmniRunError(.notImplemented, "iam is not offered by OmniRun") }
        if body.network != nil {
            throw OmniRunError(
                .notImplemented,
                "network rules (network) are not mapped by the E2B-compatible endpoint; use allow_internet_access, or OmniRun's API for egress rules")
        }
        if body.autoResume?.enabled == true {
            throw OmniRunError(.notImplemented, "autoResume is not offered by OmniRun; resume with Sandbox.connect()")
        }
        let requested = body.templateID ?? "base"
        guard requested != "mcp-gateway" else { throw OmniRunError(.notFound, "template mcp-gateway is not offered by OmniRun") }
        let timeout = body.timeout ?? 300
        guard timeout > 0, timeout <= 30 * 24 * 3600 else {
            throw OmniRunError(.invalidArgument, "timeout must be between 1 and 2592000 seconds")
        }
        let env = body.envVars ?? [:]
        for key in env.keys where !CreateSandboxRequest.isEnvName(key) {
            throw OmniRunError(.invalidArgument, "invalid environment variable name '\(key.prefix(64))'")
        }
        let metadata = body.metadata ?? [:]
        guard metadata.count <= 64, metadata.allSatisfy({ $0.key.count <= 256 && $0.value.count <= 4096 }) else {
            throw OmniRunError(.invalidArgument, "metadata is limited to 64 entries of 256-byte keys and 4 KiB values")
        }
        let created = try await creation.create(
            CreateSandboxRequest(
                template: Self.templateNames[requested] ?? requested, timeoutSeconds: timeout, env: env, metadata: metadata,
                vaultInject: false, memoryMB: nil, autoPause: body.autoPause == true, internet: body.allow_internet_access == true,
                egress: nil, screenSize: nil),
            options: .init(),
            account: account)
        return JSON.response(sandboxView(created.record, templateID: requested), status: .created)
    }

    /// The create and connect answer (E2B's `Sandbox`).
    struct SandboxView: Encodable {
        var templateID: String
        var sandboxID: String
        var alias: String
        var clientID: String
        var envdVersion: String
        var envdAccessToken: String
        var trafficAccessToken: String
        var domain: String?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(templateID, forKey: .templateID)
            try container.encode(sandboxID, forKey: .sandboxID)
            try container.encode(alias, forKey: .alias)
            try container.encode(clientID, forKey: .clientID)
            try container.encode(envdVersion, forKey: .envdVersion)
            try container.encode(envdAccessToken, forKey: .envdAccessToken)
            try container.encode(trafficAccessToken, forKey: .trafficAccessToken)
            // `null`: the SDK then sends every sandbox call to E2B_SANDBOX_URL.
            try container.encodeNil(forKey: .domain)
        }

        enum Keys: String, CodingKey {
            case templateID, sandboxID, alias, clientID, envdVersion, envdAccessToken, trafficAccessToken, domain
        }
    }

    func sandboxView(_ record: SandboxRecord, templateID: String? = nil) -> SandboxView {
        let token = access.token(for: record.id)
        return SandboxView(
            templateID: templateID ?? record.template, sandboxID: record.id, alias: record.template,
            clientID: record.nodeID ?? configuration.nodeID, envdVersion: Self.envdVersion, envdAccessToken: token,
            trafficAccessToken: token)
    }

    /// `GET /sandboxes/{id}` (E2B's `SandboxDetail`) and the items of the lists (`ListedSandbox`).
    struct DetailView: Encodable {
        var templateID: String
        var alias: String
        var sandboxID: String
        var clientID: String
        var startedAt: String
        var endAt: String
        var envdVersion: String
        var cpuCount: Int
        var memoryMB: Int
        var diskSizeMB: Int
        var state: String
        var metadata: [String: String]
        var envdAccessToken: String?
    }

    func detailView(_ record: SandboxRecord, withToken: Bool) -> DetailView {
        let image = try? service.runtime.catalog.image(for: record.template)
        // A sandbox without a timeout keeps running; E2B's field is required, so it is far away.
        let end = record.expiresAt ?? (record.createdAt + 100 * 365 * 86_400_000)
        return DetailView(
            templateID: record.template, alias: record.template, sandboxID: record.id,
            clientID: record.nodeID ?? configuration.nodeID, startedAt: isoDate(record.createdAt), endAt: isoDate(end),
            envdVersion: Self.envdVersion, cpuCount: record.cpuCount, memoryMB: record.memoryMB,
            diskSizeMB: image?.diskMB ?? 0, state: record.state == .paused ? "paused" : "running",
            metadata: record.metadata, envdAccessToken: withToken ? access.token(for: record.id) : nil)
    }

    @Sendable func info(_ request: Request, context: AppRequestContext) async throws -> Response {
        let record = try await service.record(try context.parameters.require("id"), account: try context.requireAccount())
        return JSON.response(detailView(record, withToken: true))
    }

    /// `GET /sandboxes` (running ones, as v1 does) and `GET /v2/sandboxes` (`state`,
    /// `metadata`, `limit`, `nextToken`; the cursor in `X-Next-Token`).
    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let query = request.query
        let isV2 = request.uri.path.hasPrefix(E2BRoutes.prefix + "/v2/")
        var records = try await service.list(account: account).filter { $0.state == .running || $0.state == .paused }
        let states = Set((query["state"] ?? (isV2 ? "running,paused" : "running")).split(separator: ",").map(String.init))
        for state in states where state != "running" && state != "paused" {
            throw OmniRunError(.invalidArgument, "state must be running, paused or both (comma-separated)")
        }
        records = records.filter { states.contains($0.state == .paused ? "paused" : "running") }
        if let filter = query["metadata"], !filter.isEmpty {
            let wanted = try Self.metadataFilter(filter)
            records = records.filter { record in wanted.allSatisfy { record.metadata[$0.key] == $0.value } }
        }
        records.sort { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        let limit = try SandboxController.limit(query["limit"], default: 100)
        if let token = query["nextToken"], !token.isEmpty {
            guard token.utf8.count <= 200, let after = Data(base64Encoded: SandboxController.padded(token)) else {
                throw OmniRunError(.invalidArgument, "invalid nextToken")
            }
            let cursor = SandboxController.cursor(String(decoding: after, as: UTF8.self))
            records = Array(records.drop { ($0.createdAt, $0.id) <= cursor })
        }
        let page = Array(records.prefix(limit))
        var headers: HTTPFields = [:]
        if records.count > limit, let last = page.last {
            headers[.init("X-Next-Token")!] = Data("\(last.createdAt):\(last.id)".utf8).base64EncodedString()
                .replacingOccurrences(of: "=", with: "")
        }
        return JSON.response(page.map { detailView($0, withToken: false) }, headers: headers)
    }

    /// `metadata=` of a list: a query string (`k=v&k2=v2`) whose keys and values were each
    /// percent-encoded before the string was form-encoded (the SDK quotes, then urlencodes).
    static func metadataFilter(_ text: String) throws -> [String: String] {
        guard text.utf8.count <= 8192 else { throw OmniRunError(.invalidArgument, "the metadata filter is longer than 8 KiB") }
        func decode(_ part: Substring) -> String {
            let form = Request.formDecode(String(part))
            return form.removingPercentEncoding ?? form
        }
        var result: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            result[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return result
    }

    @Sendable func kill(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await service.kill(try context.parameters.require("id"), account: try context.requireAccount())
        return JSON.noContent()
    }

    struct TimeoutBody: Decodable {
        var timeout: Int64?
        var duration: Int64?
    }

    @Sendable func setTimeout(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(TimeoutBody.self, from: request, limit: 64 << 10)
        guard let timeout = body.timeout else { throw OmniRunError(.invalidArgument, "timeout (seconds) is required") }
        guard timeout > 0 else { throw OmniRunError(.invalidArgument, "timeout must be at least 1 second") }
        try await service.setTimeout(try context.parameters.require("id"), seconds: timeout, account: try context.requireAccount())
        return JSON.noContent()
    }

    /// `POST /sandboxes/{id}/refreshes {duration}`: keeps the sandbox for `duration` seconds more (at least from now).
    @Sendable func refresh(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(TimeoutBody.self, from: request, limit: 64 << 10)
        let seconds = body.duration ?? 60
        guard seconds > 0, seconds <= 3600 else { throw OmniRunError(.invalidArgument, "duration must be between 1 and 3600 seconds") }
        try await service.setTimeout(try context.parameters.require("id"), seconds: seconds, account: try context.requireAccount())
        return JSON.noContent()
    }

    @Sendable func pause(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let id = try context.parameters.require("id")
        let record = try await service.record(id, account: account)
        guard record.state != .paused else { throw OmniRunError(.conflict, "sandbox \(id) is already paused") }
        _ = try await service.pause(id, account: account)
        return JSON.noContent()
    }

    struct ConnectBody: Decodable {
        var timeout: Int64?
        var memory: Bool?
        var autoPause: Bool?
    }

    /// `POST /v2/sandboxes/{id}/connect {timeout}`: a running sandbox answers 200 (its
    /// timeout renewed when one is given); a paused one is resumed first and answers 201.
    @Sendable func connect(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await resumeOrConnect(request, context: context, runningIsConflict: false)
    }

    /// `POST /sandboxes/{id}/resume` (v1): a paused sandbox resumed (201); a running one is a 409.
    @Sendable func resume(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await resumeOrConnect(request, context: context, runningIsConflict: true)
    }

    func resumeOrConnect(_ request: Request, context: AppRequestContext, runningIsConflict: Bool) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(ConnectBody.self, from: request, limit: 64 << 10)
        if body.memory == false {
            throw OmniRunError(.notImplemented, "resuming without memory (a reboot) is not offered; OmniRun resumes the whole machine")
        }
        let id = try context.parameters.require("id")
        var record = try await service.record(id, account: account)
        let resumed = record.state == .paused
        if resumed {
            _ = try await service.resume(id, account: account)
        } else if runningIsConflict {
            throw OmniRunError(.conflict, "sandbox \(id) is already running")
        }
        if let timeout = body.timeout {
            guard timeout > 0 else { throw OmniRunError(.invalidArgument, "timeout must be at least 1 second") }
            try await service.setTimeout(id, seconds: timeout, account: account)
        }
        record = try await service.record(id, account: account)
        return JSON.response(sandboxView(record), status: resumed ? .created : .ok)
    }

    /// E2B's `SandboxMetric`.
    struct MetricView: Encodable {
        var timestamp: String
        var timestampUnix: Int64
        var cpuCount: Int
        var cpuUsedPct: Double
        var memUsed: Int64
        var memTotal: Int64
        var memCache: Int64
        var diskUsed: Int64
        var diskTotal: Int64
    }

    /// `GET /sandboxes/{id}/metrics?start=&end=` (unix seconds, both optional).
    @Sendable func metrics(_ request: Request, context: AppRequestContext) async throws -> Response {
        let record = try await service.record(try context.parameters.require("id"), account: try context.requireAccount())
        let start = try Self.unixSeconds(request.query["start"], name: "start")
        let end = try Self.unixSeconds(request.query["end"], name: "end")
        let items = try await samples.samples(sandboxID: record.id, limit: 1000).filter { sample in
            (start.map { sample.at >= $0 * 1000 } ?? true) && (end.map { sample.at <= $0 * 1000 } ?? true)
        }
        return JSON.response(
            items.map { sample in
                MetricView(
                    timestamp: isoDate(sample.at), timestampUnix: sample.at / 1000, cpuCount: sample.cpuCount,
                    cpuUsedPct: (sample.cpuUsedPct * 100).rounded() / 100, memUsed: sample.memUsed, memTotal: sample.memTotal,
                    memCache: 0, diskUsed: sample.diskUsed, diskTotal: sample.diskTotal)
            })
    }

    static func unixSeconds(_ text: String?, name: String) throws -> Int64? {
        guard let text, !text.isEmpty else { return nil }
        guard text.utf8.count <= 12, let value = Int64(text), value >= 0, value < 100_000_000_000 else {
            throw OmniRunError(.invalidArgument, "\(name) must be a unix time in seconds")
        }
        return value
    }
}
