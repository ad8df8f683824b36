import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunError
import OmniRunStore

/// The web console (docs/console.md): its page at `/`, its files under `/console/`
/// (xterm.js from Debian's `libjs-xterm` under `/console/vendor/xterm/`), and its session:
/// `POST /console/session` signs in with an emailed code or link and sets the session
/// cookie, `GET` tells the page who is signed in and the CSRF token, `DELETE` signs out
/// (the session's key is revoked).
struct ConsoleController {
    let signIn: SignInService
    let accounts: AccountRepository
    let session: ConsoleSession
    let directory: String?
    let xtermDirectory: String

    struct SignInBody: Decodable {
        var email: String?
        var code: String?
        var token: String?
    }

    struct SessionView: Encodable {
        var account: AuthController.AccountView
        var csrf: String
        var expiresAt: String?
    }

    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.get("/") { _, _ -> Response in try file("index.html") }
        router.get("/console/vendor/xterm/**") { _, context -> Response in
            try Self.serve(context.parameters.getCatchAll().joined(separator: "/"), from: xtermDirectory)
        }
        router.get("/console/**") { _, context -> Response in
            try file(context.parameters.getCatchAll().joined(separator: "/"))
        }
        router.post("/console/session") { request, _ -> Response in
            let body = try await JSON.decode(SignInBody.self, from: request, limit: 16 << 10)
            let signedIn =
                if let token = body.token {
                    try await signIn.verify(link: token)
                } else {
                    try await signIn.verify(email: body.email, code: body.code)
                }
            var headers = HTTPFields()
            headers[.setCookie] = session.setCookie(signedIn.token, expiresAt: signedIn.expiresAt)
            return JSON.response(
                SessionView(
                    account: AuthController.view(signedIn).account, csrf: session.csrf(for: signedIn.token),
                    expiresAt: signedIn.expiresAt.map(isoDate)),
                status: .created, headers: headers)
        }
        router.get("/console/session") { request, context -> Response in
            let account = try context.requireAccount()
            guard let token = ConsoleSession.token(in: request) else {
                throw OmniRunError(.unauthorized, "no console session (sign in on the console's page)")
            }
            return JSON.response(
                SessionView(
                    account: .init(id: account.id, email: account.email, role: account.role.rawValue, createdAt: isoDate(account.createdAt)),
                    csrf: session.csrf(for: token), expiresAt: nil))
        }
        router.delete("/console/session") { request, context -> Response in
            let account = try context.requireAccount()
            if let token = ConsoleSession.token(in: request), let (key, _) = try await accounts.key(forHash: APIKeys.hash(token)) {
                _ = try await accounts.revokeKey(id: key.id, accountID: account.id)
            }
            var headers = HTTPFields()
            headers[.setCookie] = session.clearCookie
            return Response(status: .noContent, headers: headers)
        }
        return router
    }

    func file(_ path: String) throws -> Response {
        guard let directory else {
            throw OmniRunError(.notFound, "this server has no web console (OMNIRUN_CONSOLE_DIR)")
        }
        return try Self.serve(path, from: directory)
    }

    /// A file of `folder` by a relative path of plain names (no `..`, no hidden files), with
    /// its content type and the headers that keep the page to its own origin.
    static func serve(_ path: String, from folder: String) throws -> Response {
        let parts = path.split(separator: "/")
        guard !parts.isEmpty, parts.count <= 8, path.count <= 256,
            parts.allSatisfy({ part in
                !part.hasPrefix(".") && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
            }),
            let type = types[String(parts.last!.split(separator: ".").last ?? "")]
        else { throw OmniRunError(.notFound, "no such file of the console") }
        let full = folder + "/" + parts.joined(separator: "/")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue,
            let data = FileManager.default.contents(atPath: full), data.count <= 8 << 20
        else { throw OmniRunError(.notFound, "no such file of the console") }
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        headers[.init("X-Content-Type-Options")!] = "nosniff"
        headers[.init("Referrer-Policy")!] = "no-referrer"
        headers[.init("X-Frame-Options")!] = "DENY"
        headers[.contentSecurityPolicy] =
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static let types: [String: String] = [
        "html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "mjs": "text/javascript; charset=utf-8",
        "css": "text/css; charset=utf-8", "svg": "image/svg+xml", "png": "image/png", "json": "application/json",
        "ico": "image/x-icon",
    ]
}
