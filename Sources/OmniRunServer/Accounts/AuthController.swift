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
        // The emailed link: a page that signs in with one more click (into the web console or
        // for an API token), so that mail scanners that fetch links do not use the sign-in up.
        router.get("/auth/magic-link/verify") { request, _ -> Response in
            let token = try request.requiredQuery("token")
            guard token.count <= 128, token.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw OmniRunError(.invalidArgument, "token is not a sign-in link token")
            }
            return Self.linkPage(token: token, console: configuration.consoleDirectory != nil)
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

    /// The emailed link's page. Opening it uses nothing up (mail scanners fetch links): a
    /// click does, once. With the web console served, the first choice signs this browser into
    /// the console (`POST /console/session` with the link's token sets the session cookie, then
    /// the console opens at its sandboxes, the token never in its address); the other shows an
    /// API token once, as before. The token is only in this page (a data attribute), which is
    /// not cached, not framed and sends no referrer.
    static func linkPage(token: String, console: Bool) -> Response {
        let nonce = randomBytes(16).map { String(format: "%02x", $0) }.joined()
        let consoleButton =
            console
            ? #"<p><button id="console" class="primary">Open the web console</button> signed in (this browser).</p>"# + "\n"
            : ""
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Sign in to OmniRun</title></head>
            <body style="font-family: sans-serif; max-width: 32em; margin: 4em auto; padding: 0 1em" data-token="\(token)">
            <h1>Sign in to OmniRun</h1>
            <p>Choose how to finish signing in. The link works once.</p>
            \(consoleButton)<p><button id="go">Show an API token</button> (shown once, for the API and the SDKs).</p>
            <pre id="out" role="status" style="white-space: pre-wrap"></pre>
            <script nonce="\(nonce)">
            const token = document.body.dataset.token;
            const out = document.getElementById('out');
            const use = async (path) => {
              const r = await fetch(path, {method: 'POST', credentials: 'same-origin',
                headers: {'Content-Type': 'application/json'}, body: JSON.stringify({token})});
              let j = {};
              try { j = await r.json(); } catch (e) {}
              if (!r.ok) out.textContent = j.message || j.error || ('Error ' + r.status);
              return r.ok ? j : null;
            };
            document.getElementById('go').onclick = async () => {
              const j = await use('/auth/magic-link/verify');
              if (j) out.textContent = 'Your API token: ' + j.token;
            };
            const open = document.getElementById('console');
            if (open) open.onclick = async () => {
              if (await use('/console/session')) location.replace('/#/sandboxes');
            };
            </script>
            </body></html>
            """
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.init("Referrer-Policy")!] = "no-referrer"
        headers[.init("X-Frame-Options")!] = "DENY"
        headers[.init("X-Content-Type-Options")!] = "nosniff"
        headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'nonce-\(nonce)'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: .init(string: html)))
    }
}
