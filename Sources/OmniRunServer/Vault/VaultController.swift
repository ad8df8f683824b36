import Foundation
import Hummingbird
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

    struct PutBody: Decodable {
        var key: String?
        var value: String?
    }

    func register(on router: Router<AppRequestContext>) {
        router.post("/vault/init") { _, context -> Response in
            let account = try context.requireAccount()
            let createdAt = try await vault.initialize(account)
            struct Reply: Encodable {
                var initialized: Bool
                var createdAt: String
                var credentials: Int
            }
            return JSON.response(Reply(initialized: true, createdAt: isoDate(createdAt), credentials: try await vault.count(account)))
        }
        router.post("/vault/credentials") { request, context -> Response in
            let account = try context.requireAccount()
            // Room for a value at the limit written with JSON escapes.
            let body = try await JSON.decode(PutBody.self, from: request, limit: VaultService.maxValueBytes * 6 + 4096)
            guard let key = body.key, !key.isEmpty else { throw OmniRunError(.invalidArgument, "key is required") }
            guard let value = body.value else { throw OmniRunError(.invalidArgument, "value is required (a string)") }
            let (created, info) = try await vault.put(account, name: key, value: value)
            return JSON.response(CredentialView(info), status: created ? .created : .ok)
        }
        router.get("/vault/credentials") { _, context -> Response in
            JSON.response(try await vault.list(try context.requireAccount()).map(CredentialView.init))
        }
        router.delete("/vault/credentials/:key") { _, context -> Response in
            try await vault.delete(try context.requireAccount(), name: try context.parameters.require("key"))
            return JSON.noContent()
        }
    }
}
