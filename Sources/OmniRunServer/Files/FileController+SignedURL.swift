import Foundation
import Hummingbird
import OmniRunControl
import OmniRunError
import OmniRunStore

/// Signed URLs (wire protocol §4.8): `POST files/download-url` and `files/upload-url`.
extension FileController {
    struct SignBody: Decodable {
        var path: String?
        var expiresIn: Int64?
        /// The guest user the URL reads or writes as (default: the sandbox's default user).
        var user: String?
        /// Uploads: `PUT` (default, a raw body) or `POST` (raw or multipart). Downloads: `GET`.
        var method: String?
    }

    @Sendable func downloadURL(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await signedURL(request, context: context, operation: .download)
    }

    @Sendable func uploadURL(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await signedURL(request, context: context, operation: .upload)
    }

    func signedURL(_ request: Request, context: AppRequestContext, operation: URLSigner.Operation) async throws -> Response {
        let body = try await JSON.decode(SignBody.self, from: request, limit: 64 << 10)
        let path = try Self.path(body.path)
        let user = try CommandController.user(body.user) ?? ""
        let method = body.method?.uppercased() ?? (operation == .download ? "GET" : "PUT")
        let allowed = operation == .download ? ["GET"] : ["PUT", "POST"]
        guard allowed.contains(method) else {
            throw OmniRunError(.invalidArgument, "method must be \(allowed.joined(separator: " or ")) for a signed \(operation.rawValue) URL")
        }
        let id = try context.parameters.require("id")
        _ = try await service.record(id, account: try context.requireAccount())
        let lifetime = body.expiresIn ?? 3600
        guard (1...7 * 24 * 3600).contains(lifetime) else {
            throw OmniRunError(.invalidArgument, "expiresIn must be between 1 and 604800 seconds")
        }
        let grant = URLSigner.Grant(
            sandbox: id, operation: operation, method: method, path: path, user: user, expires: nowMillis() / 1000 + lifetime)
        let query = signer.query(grant).map { "\($0.0)=\(Self.formEncode($0.1))" }.joined(separator: "&")
        let url = "\(configuration.baseURL)/sandboxes/\(id)/files/\(operation.rawValue)?\(query)"
        return JSON.response(["url": url, "method": method, "expiresAt": isoDate(grant.expires * 1000)])
    }

    static func formEncode(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}
