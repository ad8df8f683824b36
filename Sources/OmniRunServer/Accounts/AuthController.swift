import Foundation
import Hummingbird
import OmniRunControl
import OmniRunError
import OmniRunStore

/// `/auth/*`: sign-in by email (open), the caller's account, and its API tokens.
struct AuthController {
    let signIn: SignInService
    let accounts: AccountRepository
    let vault: VaultService
    let spend: SpendLedger
    let configuration: ServerConfiguration

    struct RequestBody: Decodable {
        var email: String?
    }

    struct VerifyBody: Decodable {
        var email: String?
        var code: String?
    }

    struct LinkBody: Decodable {
        var token: String?
    }

    struct SignedInView: Encodable {
        var token: String
        var tokenID: String
        var expiresAt: String?
        var newAccount: Bool
        var account: AccountView
    }

    struct AccountView: Encodable {
        var id: String
        var email: String
        var role: String
        var createdAt: String
    }

    struct TokenView: Encodable {
        var id: String
        var name: String
        var prefix: String
        var createdAt: String
        var expiresAt: String?
        var revokedAt: String?
        var token: String?

        init(_ key: APIKeyRecord, token: String? = nil) {
            id = key.id
            name = key.name
            prefix = key.prefix
            createdAt = isoDate(key.createdAt)
            expiresAt = key.expiresAt.map(isoDate)
            revokedAt = key.revokedAt.map(isoDate)
            self.token = token
        }
    }

    struct CreateTokenBody: Decodable {
        var name: String?
        /// Seconds from now.
        var expiresIn: Int64?
        /// An ISO 8601 instant (alternative to `expiresIn`).
        var expiresAt: String?
    }

    static let openPaths: Set<String> = [
        "/auth/magic-link/request", "/auth/otp/verify", "/auth/magic-link/verify", "/auth/mfa/totp/verify",
    ]

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/auth/magic-link/request") { request, context -> Response in
            let body = try await JSON.decode(RequestBody.self, from: request, limit: 16 << 10)
            let (email, expiresIn) = try await signIn.request(email: body.email, from: context.clientAddress)
            struct Reply: Encodable {
                var sent: Bool
                var email: String
                var expiresIn: Int64
            }
            return JSON.response(Reply(sent: true, email: email, expiresIn: expiresIn))
        }
        router.post("/auth/otp/verify") { request, _ -> Response in
            let body = try await JSON.decode(VerifyBody.self, from: request, limit: 16 << 10)
            return JSON.response(Self.view(try await signIn.verify(email: body.email, code: body.code)))
        }
        router.post("/auth/magic-link/verify") { request, _ -> Response in
            let body = try await JSON.decode(LinkBody.self, from: request, limit: 16 << 10)
            return JSON.response(Self.view(try await signIn.verify(link: body.token)))
        }
        // The emailed link: a page that signs in with one more click, so that mail
        // scanners that fetch links do not use the sign-in up.
        router.get("/auth/magic-link/verify") { request, _ -> Response in
            let token = try request.requiredQuery("token")
            guard token.count <= 128, token.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw OmniRunError(.invalidArgument, "token is not a sign-in link token")
            }
            return Self.linkPage(token: token)
        }
        router.post("/auth/mfa/totp/verify") { _, _ -> Response in
            throw OmniRunError(.notImplemented, "multi-factor sign-in is not available on this server yet")
        }
        router.get("/auth/me", use: me)
        router.post("/auth/tokens", use: createToken)
        router.get("/auth/tokens") { _, context -> Response in
            let account = try context.requireAccount()
            return JSON.response(try await accounts.keys(accountID: account.id).map { TokenView($0) })
        }
        router.delete("/auth/tokens/:tokenID") { _, context -> Response in
            let account = try context.requireAccount()
            let id = try context.parameters.require("tokenID")
            guard let key = try await accounts.keys(accountID: account.id).first(where: { $0.id == id }) else {
                throw OmniRunError(.notFound, "no token \(id) on this account")
            }
            if key.revokedAt == nil { _ = try await accounts.revokeKey(id: id, accountID: account.id) }
            return JSON.noContent()
        }
        return router
    }

    static func view(_ signedIn: SignInService.SignedIn) -> SignedInView {
        SignedInView(
            token: signedIn.token, tokenID: signedIn.tokenID, expiresAt: signedIn.expiresAt.map(isoDate),
            newAccount: signedIn.newAccount,
            account: AccountView(
                id: signedIn.account.id, email: signedIn.account.email, role: signedIn.account.role.rawValue,
                createdAt: isoDate(signedIn.account.createdAt)))
    }

    @Sendable func me(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        struct Limits: Encodable {
            var concurrentSandboxes: Int
            var spendCapCents: Int64
            var llmRequestsPerMinute: Int
        }
        struct Me: Encodable {
            var id: String
            var email: String
            var role: String
            var createdAt: String
            var limits: Limits
            var spend: SpendLedger.Usage
        }
        let usage = try await spend.usage(account)
        return JSON.response(
            Me(
                id: account.id, email: account.email, role: account.role.rawValue, createdAt: isoDate(account.createdAt),
                limits: Limits(
                    concurrentSandboxes: account.concurrentLimit, spendCapCents: usage.spendCapCents,
                    llmRequestsPerMinute: configuration.llm.requestsPerMinute),
                spend: usage))
    }

    @Sendable func createToken(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(CreateTokenBody.self, from: request, limit: 16 << 10)
        let name = body.name?.trimmingCharacters(in: .whitespaces) ?? "api"
        guard !name.isEmpty, name.count <= 100, !name.contains(where: { $0.isNewline }) else {
            throw OmniRunError(.invalidArgument, "name must be 1 to 100 characters on one line")
        }
        var expiresAt: Int64? = nil
        if let seconds = body.expiresIn {
            guard seconds > 0, seconds <= 10 * 365 * 86400 else {
                throw OmniRunError(.invalidArgument, "expiresIn must be between 1 second and 10 years")
            }
            expiresAt = nowMillis() + seconds * 1000
        } else if let text = body.expiresAt {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let plain = ISO8601DateFormatter()
            guard let date = formatter.date(from: text) ?? plain.date(from: text) else {
                throw OmniRunError(.invalidArgument, "expiresAt must be an ISO 8601 date-time")
            }
            let millis = Int64(date.timeIntervalSince1970 * 1000)
            guard millis > nowMillis() else { throw OmniRunError(.invalidArgument, "expiresAt must be in the future") }
            expiresAt = millis
        }
        let (id, token) = try await TokenIssuer(accounts: accounts).issue(account: account, name: name, expiresAt: expiresAt)
        guard let key = try await accounts.keys(accountID: account.id).first(where: { $0.id == id }) else {
            throw OmniRunError(.internalError, "the new token was not stored")
        }
        return JSON.response(TokenView(key, token: token), status: .created)
    }

    static func linkPage(token: String) -> Response {
        let html = """
            <!doctype html>
            <html><head><meta charset="utf-8"><title>Sign in to OmniRun</title></head>
            <body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">
            <h1>Sign in to OmniRun</h1>
            <p>Press the button to finish signing in. Your API token is shown once.</p>
            <button id="go">Sign in</button>
            <pre id="out"></pre>
            <script>
            document.getElementById('go').onclick = async () => {
              const r = await fetch('/auth/magic-link/verify', {method: 'POST',
                headers: {'Content-Type': 'application/json'}, body: JSON.stringify({token: '\(token)'})});
              const j = await r.json();
              document.getElementById('out').textContent = r.ok ? 'Your API token: ' + j.token : (j.message || j.error);
            };
            </script>
            </body></html>
            """
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: .init(string: html)))
    }
}
