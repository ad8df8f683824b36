import Foundation
import Hummingbird
import OmniRunControl
import OmniRunError
import OmniRunStore

/// Admits a request by its API key (`X-API-Key`, or `Authorization: Bearer`), or by
/// a signed URL on the two routes that have them. `/status`, `/openapi.json`, `/health`,
/// `/health/ready` and the Prometheus `/metrics` are open.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let accounts: AccountRepository
    let signer: URLSigner
    /// Whose `X-Forwarded-For` names the client (per-address limits).
    var trustedProxies = TrustedProxies()
    /// The web console's cookie session (a key in an `HttpOnly` cookie, with a CSRF token).
    var console: ConsoleSession?
    static let openPaths: Set<String> = ["/status", "/openapi.json", "/health", "/health/ready", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let path = request.uri.path
        if context.gatewaySandboxID != nil {
            // From inside a sandbox: already signed in as its owner, and only the LLM proxy answers.
            guard path.hasPrefix("/llm/v1/") else {
                throw OmniRunError(.forbidden, "only the LLM proxy (/llm/v1) is reachable from inside a sandbox")
            }
            return try await next(request, context)
        }
        context.clientAddress = trustedProxies.clientAddress(
            peer: context.clientAddress, forwardedFor: request.headers[values: .init("X-Forwarded-For")!])
        if Self.openPaths.contains(path) || AuthController.openPaths.contains(path) { return try await next(request, context) }
        // The console's page and files, and its sign-in, are public.
        if request.method == .get, path == "/" || (path.hasPrefix("/console/") && path != "/console/session") {
            return try await next(request, context)
        }
        if request.method == .post, path == "/console/session" { return try await next(request, context) }
        // The E2B-compatible endpoint checks its own credentials (E2BMiddleware): its API
        // key header for the control routes, a sandbox's access token for the sandbox routes.
        if path.hasPrefix(E2BRoutes.prefix + "/") { return try await next(request, context) }
        // Node-to-node routes: the node's signature (checked before) is the credential.
        if path.hasPrefix("/internal/") {
            guard context.callingNode != nil else { throw OmniRunError(.unauthorized, "this route is for the nodes of the cluster") }
            return try await next(request, context)
        }
        if let (sandbox, operation) = Self.signedRoute(path), request.uri.query?.contains("signature=") == true {
            context.signedGrant = try signedGrant(request, sandbox: sandbox, operation: operation)
            context.signedSandboxID = sandbox
            return try await next(request, context)
        }
        let key: String?
        var fromCookie = false
        if let header = request.headers[.init("X-API-Key")!], !header.isEmpty {
            key = header
        } else if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            key = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        } else if console != nil, let token = ConsoleSession.token(in: request) {
            key = token
            fromCookie = true
        } else {
            key = nil
        }
        guard let key, !key.isEmpty else {
            throw OmniRunError(.unauthorized, "an API key is required (X-API-Key header or Authorization: Bearer)")
        }
        let account = try await Self.account(forKey: key, accounts: accounts)
        if fromCookie, let console, !console.admits(request, token: key) {
            throw OmniRunError(
                .forbidden, "the console's CSRF token is missing or wrong (\(ConsoleSession.csrfHeader.rawName) on every change)")
        }
        context.account = account
        context.logger[metadataKey: "account"] = "\(account.id)"
        return try await next(request, context)
    }

    /// The account of an API key that is known, not revoked and not expired (401 otherwise).
    static func account(forKey key: String, accounts: AccountRepository) async throws -> AccountRecord {
        guard key.count <= 256, let (record, account) = try await accounts.key(forHash: APIKeys.hash(key)) else {
            throw OmniRunError(.unauthorized, "invalid API key: no such key")
        }
        if let revoked = record.revokedAt {
            throw OmniRunError(.unauthorized, "this API key was revoked at \(isoDate(revoked))")
        }
        if let expires = record.expiresAt, expires <= nowMillis() {
            throw OmniRunError(.unauthorized, "this API key expired at \(isoDate(expires))")
        }
        return account
    }

    /// `/sandboxes/{id}/files/download` and `/sandboxes/{id}/files/upload`: the routes a
    /// signed URL can reach (which method, path and user it allows is in its signature).
    static func signedRoute(_ path: String) -> (String, URLSigner.Operation)? {
        let parts = path.split(separator: "/")
        guard parts.count == 4, parts[0] == "sandboxes", parts[2] == "files" else { return nil }
        if parts[3] == "download" { return (String(parts[1]), .download) }
        if parts[3] == "upload" { return (String(parts[1]), .upload) }
        return nil
    }

    /// Checks a signed URL against this request: the method, the route, and a query of
    /// exactly the signed names, each once (`path`, `user` if one was signed, `expires`,
    /// `signature`). Anything else is a 403 before the body is read.
    func signedGrant(_ request: Request, sandbox: String, operation: URLSigner.Operation) throws -> URLSigner.Grant {
        var values: [String: String] = [:]
        for (name, value) in Self.queryPairs(request.uri.query ?? "") {
            guard URLSigner.queryNames.contains(name), values[name] == nil else {
                throw OmniRunError(
                    .forbidden, "the signed URL was changed: '\(name.prefix(40))' is not one of its signed query parameters, once each")
            }
            values[name] = value
        }
        guard let signature = values["signature"], let expires = values["expires"].flatMap({ Int64($0) }),
            let filePath = values["path"]
        else {
            throw OmniRunError(.forbidden, "the signed URL is incomplete (path, expires and signature are required)")
        }
        guard expires > nowMillis() / 1000 else {
            // The instant only when it is one (the value is the caller's).
            let when = expires > 0 ? " at \(isoDate(expires * 1000))" : ""
            throw OmniRunError(.forbidden, "the signed URL expired\(when)")
        }
        let grant = URLSigner.Grant(
            sandbox: sandbox, operation: operation, method: request.method.rawValue, path: filePath, user: values["user"] ?? "",
            expires: expires)
        guard signer.verify(grant, signature: signature, now: nowMillis()) else {
            throw OmniRunError(
                .forbidden, "the signed URL does not allow this request: its method, sandbox, path, user or expiry differ from what was signed")
        }
        return grant
    }

    /// The query's name/value pairs in order, duplicates kept, decoded as `Request.query` does.
    static func queryPairs(_ raw: String) -> [(String, String)] {
        raw.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (Request.formDecode(String(parts[0])), parts.count > 1 ? Request.formDecode(String(parts[1])) : "")
        }
    }
}
