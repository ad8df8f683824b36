import Foundation
import Hummingbird
import OmniRunError
import OmniRunStore

/// Admits a request by its API key (`X-API-Key`, or `Authorization: Bearer`), or by
/// a signed URL on the two routes that have them. `/status`, `/openapi.json` and the
/// Prometheus `/metrics` are open.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let accounts: AccountRepository
    let signer: URLSigner
    static let openPaths: Set<String> = ["/status", "/openapi.json", "/health", "/metrics"]

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
        if Self.openPaths.contains(path) || AuthController.openPaths.contains(path) { return try await next(request, context) }
        let query = request.query
        if let signature = query["signature"], let (sandbox, operation) = Self.signedRoute(path, method: request.method) {
            guard let expires = query["expires"].flatMap({ Int64($0) }), let filePath = query["path"],
                signer.verify(
                    sandbox: sandbox, operation: operation, path: filePath, expires: expires, signature: signature,
                    now: nowMillis())
            else {
                throw OmniRunError(.forbidden, "the signed URL is invalid or has expired")
            }
            context.signedSandboxID = sandbox
            return try await next(request, context)
        }
        let key: String?
        if let header = request.headers[.init("X-API-Key")!], !header.isEmpty {
            key = header
        } else if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            key = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        } else {
            key = nil
        }
        guard let key, !key.isEmpty else {
            throw OmniRunError(.unauthorized, "an API key is required (X-API-Key header or Authorization: Bearer)")
        }
        guard key.count <= 256, let (record, account) = try await accounts.key(forHash: APIKeys.hash(key)) else {
            throw OmniRunError(.unauthorized, "invalid API key: no such key")
        }
        if let revoked = record.revokedAt {
            throw OmniRunError(.unauthorized, "this API key was revoked at \(isoDate(revoked))")
        }
        if let expires = record.expiresAt, expires <= nowMillis() {
            throw OmniRunError(.unauthorized, "this API key expired at \(isoDate(expires))")
        }
        context.account = account
        context.logger[metadataKey: "account"] = "\(account.id)"
        return try await next(request, context)
    }

    /// `/sandboxes/{id}/files/download` (GET) and `/sandboxes/{id}/files/upload` (PUT, POST).
    static func signedRoute(_ path: String, method: HTTPRequest.Method) -> (String, URLSigner.Operation)? {
        let parts = path.split(separator: "/")
        guard parts.count == 4, parts[0] == "sandboxes", parts[2] == "files" else { return nil }
        if parts[3] == "download", method == .get { return (String(parts[1]), .download) }
        if parts[3] == "upload", method == .put || method == .post { return (String(parts[1]), .upload) }
        return nil
    }
}
