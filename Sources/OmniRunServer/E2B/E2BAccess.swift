import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// Who may use the E2B-compatible endpoint, and for which sandbox.
///
/// - Control routes (`/e2b/sandboxes…`, `/e2b/v2/sandboxes…`): an OmniRun API key in
///   `X-API-Key`, checked as everywhere else.
/// - Sandbox routes (envd's RPC and `/files`, the code interpreter's `/execute` and
///   `/contexts`): the sandbox named by `E2b-Sandbox-Id` and its access token in
///   `X-Access-Token` (or `E2B-Traffic-Access-Token`, which the code interpreter's context
///   calls carry instead). The token is an HMAC of the sandbox id under a key kept in the
///   store, handed out only with the sandbox (create, connect, info) to its owner's key.
struct E2BAccess: Sendable {
    let key: Data
    let accounts: AccountRepository
    let service: SandboxService
    let e2ee: E2EESessions

    static let sandboxHeader = HTTPField.Name("E2b-Sandbox-Id")!
    static let tokenHeader = HTTPField.Name("X-Access-Token")!
    static let trafficHeader = HTTPField.Name("E2B-Traffic-Access-Token")!

    /// The access token of a sandbox (64 hex digits).
    func token(for sandboxID: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data("e2b-envd:\(sandboxID)".utf8), using: SymmetricKey(data: key))
            .map { String(format: "%02x", $0) }.joined()
    }

    /// The account of the control routes' key.
    func apiAccount(_ request: Request) async throws -> AccountRecord {
        guard let key = request.headers[.init("X-API-Key")!], !key.isEmpty else {
            throw OmniRunError(.unauthorized, "an API key is required in X-API-Key (E2B_API_KEY: an OmniRun API key)")
        }
        return try await AuthMiddleware.account(forKey: key, accounts: accounts)
    }

    /// The sandbox a sandbox route names, checked against its token, with its owner. An
    /// unknown or ended sandbox is `E2BSandboxGone` (a 502, as E2B's edge answers).
    func sandboxRecord(_ request: Request) async throws -> (SandboxRecord, AccountRecord) {
        guard let id = request.headers[Self.sandboxHeader], !id.isEmpty else {
            throw OmniRunError(.invalidArgument, "the E2b-Sandbox-Id header is required (set E2B_SANDBOX_URL to this endpoint)")
        }
        guard id.utf8.count <= 64, SandboxID(id) != nil else { throw E2BSandboxGone(id: String(id.prefix(64))) }
        let presented = request.headers[Self.tokenHeader] ?? request.headers[Self.trafficHeader]
        guard let presented, !presented.isEmpty else {
            throw OmniRunError(.unauthorized, "the sandbox's access token is required (X-Access-Token)")
        }
        // Constant time: the comparison says nothing about how much of a guess was right.
        guard presented.utf8.count == 64, Self.equal(Array(presented.utf8), Array(token(for: id).utf8)) else {
            throw OmniRunError(.unauthorized, "the access token does not open sandbox \(id)")
        }
        let record: SandboxRecord
        do {
            record = try await service.record(id, account: nil)
        } catch let error as OmniRunError where error.code == .notFound {
            throw E2BSandboxGone(id: id)
        }
        guard let owner = try await accounts.find(id: record.accountID) else { throw E2BSandboxGone(id: id) }
        try await refuseSealed(id)
        return (record, owner)
    }

    /// An e2ee sandbox is reached only through its sealed channel (docs/e2ee.md), never here.
    func refuseSealed(_ id: String) async throws {
        let sealed = await e2ee.channel(id) != nil
        let locked = await e2ee.isLocked(id)
        if sealed || locked {
            throw OmniRunError(
                .forbidden, "sandbox \(id) is end-to-end encrypted; it is reached only through OmniRun's own API and SDKs")
        }
    }

    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// The running sandbox of a sandbox route (the middleware has checked the token).
    func sandbox(_ request: Request, context: AppRequestContext) async throws -> Sandbox {
        let id = request.headers[Self.sandboxHeader] ?? ""
        do {
            return try await service.sandbox(id, account: try context.requireAccount())
        } catch let error as OmniRunError where error.code == .notFound {
            throw E2BSandboxGone(id: id)
        }
    }
}

/// A sandbox route for a sandbox that is not (or no longer) running.
struct E2BSandboxGone: Error {
    var id: String
    var message: String { "The sandbox \(id) was not found" }
}

/// The endpoint's routes: which kind a path is decides its credentials and its errors' shape.
enum E2BRouteKind {
    /// REST: errors are `{"code": <status>, "message"}`.
    case control
    /// Connect RPC: errors are Connect's `{"code": "<name>", "message"}`.
    case rpc
    /// envd's plain HTTP (`/files`, `/health`): `{"code": <status>, "message"}`.
    case envdHTTP
    /// The code interpreter (`/execute`, `/contexts`): a text body.
    case interpreter

    init(path: String) {
        let rest = path.dropFirst(E2BRoutes.prefix.count)
        if rest.hasPrefix("/process.Process/") || rest.hasPrefix("/filesystem.Filesystem/") {
            self = .rpc
        } else if rest == "/files" || rest == "/health" {
            self = .envdHTTP
        } else if rest == "/execute" || rest == "/contexts" || rest.hasPrefix("/contexts/") {
            self = .interpreter
        } else {
            self = .control
        }
    }

    func response(for error: any Error) -> Response {
        if let gone = error as? E2BSandboxGone {
            return Self.json(status: .badGateway, message: gone.message)
        }
        if self == .rpc { return ConnectError(error).response }
        let normalized = APIError.normalize(error)
        let status = APIError.status(for: normalized.code)
        if self == .interpreter {
            return Response(
                status: status, headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: normalized.message)))
        }
        return Self.json(status: status, message: normalized.message)
    }

    static func json(status: HTTPResponse.Status, message: String) -> Response {
        struct Body: Encodable {
            var code: Int
            var message: String
        }
        return JSON.response(Body(code: status.code, message: message), status: status)
    }
}

/// Admits the endpoint's requests (`E2BAccess`) and gives their errors E2B's shapes. A
/// sandbox another node runs is relayed to it, as on OmniRun's own routes.
struct E2BMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let access: E2BAccess
    let relay: NodeRelay?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let kind = E2BRouteKind(path: request.uri.path)
        do {
            var context = context
            let record: SandboxRecord?
            if kind == .control {
                let account = try await access.apiAccount(request)
                context.account = account
                record = try await controlRecord(request, account: account)
            } else {
                let (found, owner) = try await access.sandboxRecord(request)
                context.account = owner
                record = found
            }
            context.logger[metadataKey: "account"] = "\(context.account?.id ?? "")"
            if let record, let relay, context.callingNode == nil, let owner = record.nodeID,
                owner != access.service.configuration.nodeID
            {
                return try await relay.forward(request, to: owner)
            }
            if let record, let id = SandboxID(record.id) { await access.service.touch(id) }
            return try await next(request, context)
        } catch {
            let response = kind.response(for: error)
            if response.status.code >= 500, !(error is E2BSandboxGone) {
                context.logger.warning(
                    "E2B request failed", metadata: ["path": "\(request.uri.path)", "error": "\(APIError.normalize(error).message)"])
            }
            return response
        }
    }

    /// The sandbox a control route names (`…/sandboxes/{id}…`), when it is this caller's and live.
    func controlRecord(_ request: Request, account: AccountRecord) async throws -> SandboxRecord? {
        let parts = request.uri.path.dropFirst(E2BRoutes.prefix.count).split(separator: "/")
        let index = parts.first == "v2" ? 1 : 0
        guard parts.count > index + 1, parts[index] == "sandboxes" else { return nil }
        let id = String(parts[index + 1])
        guard let record = try? await access.service.record(id, account: account) else { return nil }
        try await access.refuseSealed(id)
        return record
    }
}
