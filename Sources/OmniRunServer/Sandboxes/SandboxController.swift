import Foundation
import Hummingbird
import OmniRunControl
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// Sandbox lifecycle routes (wire protocol §4).
struct SandboxController {
    let creation: SandboxCreation
    let configuration: ServerConfiguration
    var service: SandboxService { creation.service }

    struct CreateBody: Decodable {
        var template: String?
        /// Synonyms of `template` that scripts written for the hosted product send.
        var templateID: String?
        var templateId: String?
        var timeout: Int64?
        var internet: Bool?
        var memoryMB: Int?
        var envVars: [String: String]?
        var metadata: [String: String]?
        var autoPause: Bool?
        var network: NetworkPolicyBody?
        var secure: Bool?
        var maskRequestHost: String?
        var vaultInject: Bool?
        var e2ee: Bool?
        var clientPublicKey: String?
        var sniProxy: Bool?
        var allowDomains: [String]?
    }

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/sandboxes", use: create)
        router.get("/sandboxes", use: list)
        router.get("/sandboxes/history", use: history)
        router.get("/sandboxes/:id", use: info)
        router.delete("/sandboxes/:id", use: kill)
        router.post("/sandboxes/:id/timeout", use: setTimeout)
        router.post("/sandboxes/:id/pause", use: pause)
        router.post("/sandboxes/:id/resume", use: resume)
        router.post("/sandboxes/:id/fork", use: fork)
        router.post("/sandboxes/:id/network-policy", use: setNetworkPolicy)
        // Features that arrive with later work answer a clear 501, never a silent ignore.
        for (method, path, feature) in Self.notYet {
            router.on(RouterPath(path), method: method) { _, context -> Response in
                _ = try await service.record(try context.parameters.require("id"), account: try context.requireAccount())
                throw OmniRunError(.notImplemented, "\(feature) is not available on this server yet")
            }
        }
        return router
    }

    static let notYet: [(HTTPRequest.Method, String, String)] = [
    ]

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(CreateBody.self, from: request, limit: configuration.maxJSONBody)
        let (internet, egress) = try networkRequest(body)
        let mask = try Self.validateMask(body.maskRequestHost)
        if body.e2ee == true {
            guard let clientKey = body.clientPublicKey, !clientKey.isEmpty else {
                throw OmniRunError(.invalidArgument, "e2ee: true needs clientPublicKey (base64 DER SPKI of an ECDH P-256 key)")
            }
        } else if body.clientPublicKey != nil {
            throw OmniRunError(.invalidArgument, "clientPublicKey is only used with e2ee: true")
        }
        let timeout = body.timeout ?? 300
        guard timeout >= 0, timeout <= 30 * 24 * 3600 else {
            throw OmniRunError(.invalidArgument, "timeout must be between 0 (permanent) and 2592000 seconds")
        }
        let template = try Self.template(body)
        let env = body.envVars ?? [:]
        for key in env.keys where !CreateSandboxRequest.isEnvName(key) {
            throw OmniRunError(.invalidArgument, "invalid environment variable name '\(key)'")
        }
        // `RESOLUTION` (the public CLI's `beamup desktop`) sizes a desktop's screen; for other
        // templates it is a variable like any other.
        let screenSize = try env["RESOLUTION"].flatMap { service.runtime.hasDesktop(template) ? try ScreenSize(parsing: $0) : nil }
        let metadata = body.metadata ?? [:]
        guard metadata.count <= 64, metadata.allSatisfy({ $0.key.count <= 256 && $0.value.count <= 4096 }) else {
            throw OmniRunError(.invalidArgument, "metadata is limited to 64 entries of 256-byte keys and 4 KiB values")
        }
        // Without the field, `metadata.vaultInject: "true"` asks for it (the hosted product's vault example).
        let vaultInject = body.vaultInject ?? (metadata["vaultInject"] == "true")
        let created = try await creation.create(
            CreateSandboxRequest(
                template: template, timeoutSeconds: timeout, env: env, metadata: metadata, vaultInject: vaultInject,
                memoryMB: body.memoryMB, autoPause: body.autoPause == true, internet: internet, egress: egress,
                screenSize: screenSize),
            options: .init(
                clientPublicKey: body.e2ee == true ? body.clientPublicKey : nil, secure: body.secure == true, maskRequestHost: mask),
            account: account)
        var info = SandboxInfo(created.record)
        info.serverPublicKey = created.serverPublicKey
        return JSON.response(CreatedSandbox(info: info, trafficToken: created.trafficToken), status: .created)
    }

    /// `template`, or its synonyms `templateID`/`templateId`; the SDK's default when none is
    /// given. Two that disagree are refused (never one of them silently).
    static func template(_ body: CreateBody) throws -> String {
        let named = [body.template, body.templateID, body.templateId].compactMap { $0 }
        guard let first = named.first else { return "python-3.11" }
        guard named.allSatisfy({ $0 == first }) else {
            throw OmniRunError(.invalidArgument, "template, templateID and templateId name different templates; send one")
        }
        return first
    }

    /// `maskRequestHost`: a Host value (`${PORT}` allowed), no spaces or line breaks.
    static func validateMask(_ value: String?) throws -> String? {
        guard let value, !value.isEmpty else { return nil }
        guard value.count <= 255,
            value.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f && $0 != "/" && $0 != "@" })
        else {
            throw OmniRunError(.invalidArgument, "maskRequestHost must be a host name, optionally with a port or ${PORT}")
        }
        return value
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let query = request.query
        // Without `limit`, one page holds every sandbox an account can have (the public
        // SDK's `list()` reads only the first page).
        let limit = try Self.limit(query["limit"], default: Self.maxPage)
        var records = try await service.list(account: account)
        if let state = query["state"], !state.isEmpty {
            let states = Set(state.split(separator: ",").map { String($0) })
            records = records.filter { states.contains(SandboxInfo.wireState($0.state)) }
        }
        if let filter = query["metadata"], !filter.isEmpty {
            let pairs = filter.split(separator: ",").map { pair -> (String, String) in
                let parts = pair.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }
            records = records.filter { record in pairs.allSatisfy { record.metadata[$0.0] == $0.1 } }
        }
        if let token = query["next_token"], !token.isEmpty {
            guard let after = Data(base64Encoded: Self.padded(token)).map({ String(decoding: $0, as: UTF8.self) }) else {
                throw OmniRunError(.invalidArgument, "invalid next_token")
            }
            records = Array(records.drop { ($0.createdAt, $0.id) <= Self.cursor(after) })
        }
        let page = Array(records.prefix(limit))
        var headers: HTTPFields = [:]
        if records.count > limit, let last = page.last {
            headers[.init("x-next-token")!] = Data("\(last.createdAt):\(last.id)".utf8).base64EncodedString()
                .replacingOccurrences(of: "=", with: "")
        }
        let retention = configuration.quotas.pausedRetentionSeconds
        return JSON.response(page.map { SandboxInfo($0, retentionSeconds: retention) }, headers: headers)
    }

    static func cursor(_ text: String) -> (Int64, String) {
        let parts = text.split(separator: ":", maxSplits: 1)
        return (Int64(parts.first ?? "") ?? 0, parts.count > 1 ? String(parts[1]) : "")
    }

    static func padded(_ token: String) -> String {
        token + String(repeating: "=", count: (4 - token.count % 4) % 4)
    }

    /// The largest page of `GET /sandboxes` and `/sandboxes/history`; a larger `limit` is
    /// clamped to it.
    static let maxPage = 1000

    /// A positive whole `limit`, at most `maxPage` (a larger one is clamped).
    static func limit(_ text: String?, default value: Int) throws -> Int {
        guard let text, !text.isEmpty else { return value }
        // Digits only; a number past Int's range is as large as any.
        let digits = text.utf8.count <= 40 && text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        let limit = Int(text) ?? Int.max
        guard digits, limit > 0 else {
            throw OmniRunError(.invalidArgument, "limit must be a positive integer (pages hold at most \(maxPage))")
        }
        return min(limit, maxPage)
    }

    /// `offset`: how many of the newest ended sandboxes to skip (0 to 1,000,000).
    static func offset(_ text: String?) throws -> Int {
        guard let text, !text.isEmpty else { return 0 }
        guard let offset = Int(text), (0...1_000_000).contains(offset) else {
            throw OmniRunError(.invalidArgument, "offset must be an integer between 0 and 1000000")
        }
        return offset
    }

    /// `GET /sandboxes/history?limit=&offset=&before=`: ended sandboxes, newest first.
    @Sendable func history(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let query = request.query
        let limit = try Self.limit(query["limit"], default: 100)
        let offset = try Self.offset(query["offset"])
        let before = query["before"].flatMap { Int64($0) }
        let records = try await service.history(account: account, limit: limit, before: before, offset: offset)
        return JSON.response(records.map(HistoryItem.init))
    }

    @Sendable func info(_ request: Request, context: AppRequestContext) async throws -> Response {
        let record = try await service.record(try context.parameters.require("id"), account: try context.requireAccount())
        return JSON.response(SandboxInfo(record, retentionSeconds: configuration.quotas.pausedRetentionSeconds))
    }

    @Sendable func kill(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await service.kill(try context.parameters.require("id"), account: try context.requireAccount())
        return JSON.noContent()
    }

    struct TimeoutBody: Decodable {
        var timeout: Int64?
    }

    @Sendable func setTimeout(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(TimeoutBody.self, from: request, limit: 64 << 10)
        guard let timeout = body.timeout else { throw OmniRunError(.invalidArgument, "timeout (seconds) is required") }
        try await service.setTimeout(try context.parameters.require("id"), seconds: timeout, account: account)
        return JSON.response(["status": "ok"])
    }

    /// `POST /sandboxes/{id}/pause` → `{"status": "paused"}` once the whole machine is saved.
    @Sendable func pause(_ request: Request, context: AppRequestContext) async throws -> Response {
        let status = try await service.pause(try context.parameters.require("id"), account: try context.requireAccount())
        return JSON.response(["status": status.rawValue])
    }

    /// `POST /sandboxes/{id}/resume` → `{"status": "running"}` once the agent answers again.
    @Sendable func resume(_ request: Request, context: AppRequestContext) async throws -> Response {
        let status = try await service.resume(try context.parameters.require("id"), account: try context.requireAccount())
        return JSON.response(["status": status.rawValue])
    }

    struct ForkBody: Decodable {
        var count: Int?
        /// Forking an e2ee sandbox: the client's P-256 key (as at create); each copy answers
        /// with its own `serverPublicKey`, so no two sandboxes share a channel key.
        var clientPublicKey: String?
    }

    struct ForkedSandboxes: Encodable {
        var sandboxes: [SandboxInfo]
    }

    /// `POST /sandboxes/{id}/fork {count}` → 201 `{"sandboxes": [SandboxInfo…]}`: copies that
    /// start from the sandbox's memory and disk as they are now (see docs/fork.md).
    @Sendable func fork(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(ForkBody.self, from: request, limit: 64 << 10)
        let copies = try await creation.fork(
            try context.parameters.require("id"), count: body.count ?? 1, clientPublicKey: body.clientPublicKey, account: account)
        let infos = copies.map { copy in
            var info = SandboxInfo(copy.record)
            info.serverPublicKey = copy.serverPublicKey
            return info
        }
        return JSON.response(ForkedSandboxes(sandboxes: infos), status: .created)
    }
}
