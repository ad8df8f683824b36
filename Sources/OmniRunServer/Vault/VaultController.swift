import Foundation
import Hummingbird
import OmniRunControl
import OmniRunError
import OmniRunStore

/// `/vault/*`: the caller's own vault only; values go in and never come out.
struct VaultController {
    let vault: VaultService

    struct CredentialView: Encodable {
        var key: String
        var createdAt: String
        var updatedAt: String

        init(_ info: VaultCredentialInfo) {
            key = info.name
            createdAt = isoDate(info.createdAt)
            updatedAt = isoDate(info.updatedAt)
        }
    }

    /// One credential (`{key, value}`), or several at once (`{credentials: {NAME: value, …}}`,
    /// the form of the hosted product's vault example); not both.
    struct PutBody: Decodable {
        var key: String?
        var value: String?
        var credentials: [String: String]?
    }

    /// `GET /vault/credentials`: the names (`keys`, what raw-HTTP clients read) and each
    /// credential's dates (`credentials`).
    struct ListView: Encodable {
        var keys: [String]
        var credentials: [CredentialView]
    }

    /// The answer to a bulk store: the names stored, and how many were new.
    struct BulkView: Encodable {
        var keys: [String]
        var created: Int
        var updated: Int
    }

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/vault/init") { _, context -> Response in
            let account = try context.requireAccount()
            let createdAt = try await vault.initialize(account)
            struct Reply: Encodable {
                var initialized: Bool
                var createdAt: String
                var credentials: Int
                /// Always null: the vault lives sealed in the server's store, not in a
                /// sandbox of its own (clients written for the hosted product print it).
                var vault_sandbox_id: String?

                func encode(to encoder: any Encoder) throws {
                    enum Keys: String, CodingKey { case initialized, createdAt, credentials, vault_sandbox_id }
                    var container = encoder.container(keyedBy: Keys.self)
                    try container.encode(initialized, forKey: .initialized)
                    try container.encode(createdAt, forKey: .createdAt)
                    try container.encode(credentials, forKey: .credentials)
                    try container.encode(vault_sandbox_id, forKey: .vault_sandbox_id)
                }
            }
            return JSON.response(Reply(initialized: true, createdAt: isoDate(createdAt), credentials: try await vault.count(account)))
        }
        router.post("/vault/credentials") { request, context -> Response in
            let account = try context.requireAccount()
            // Room for a value at the limit written with JSON escapes (or a bulk store's few).
            let body = try await JSON.decode(PutBody.self, from: request, limit: VaultService.maxValueBytes * 6 * 8 + 4096)
            if let credentials = body.credentials {
                guard body.key == nil, body.value == nil else {
                    throw OmniRunError(.invalidArgument, "send either {key, value} or {credentials: {NAME: value, …}}, not both")
                }
                let (created, updated) = try await vault.putAll(account, credentials)
                return JSON.response(
                    BulkView(keys: credentials.keys.sorted(), created: created, updated: updated), status: created > 0 ? .created : .ok)
            }
            guard let key = body.key, !key.isEmpty else {
                throw OmniRunError(.invalidArgument, "key is required (or credentials: {NAME: value, …} to store several)")
            }
            guard let value = body.value else { throw OmniRunError(.invalidArgument, "value is required (a string)") }
            let (created, info) = try await vault.put(account, name: key, value: value)
            return JSON.response(CredentialView(info), status: created ? .created : .ok)
        }
        router.get("/vault/credentials") { _, context -> Response in
            let credentials = try await vault.list(try context.requireAccount())
            return JSON.response(ListView(keys: credentials.map(\.name), credentials: credentials.map(CredentialView.init)))
        }
        router.delete("/vault/credentials/:key") { _, context -> Response in
            try await vault.delete(try context.requireAccount(), name: try context.parameters.require("key"))
            return JSON.noContent()
        }
        return router
    }
}
