import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import OmniRunControl
import OmniRunStore

/// The web console's session: the API key a sign-in issued, kept in an `HttpOnly`,
/// `SameSite=Strict` cookie (`Secure` when the server is reached over https), so that page
/// scripts never hold it. A request authenticated by the cookie that changes anything must
/// carry the session's CSRF token in `X-OmniRun-CSRF`: an HMAC of the session under a key of
/// this installation, which the page learns from `GET /console/session` (same origin only).
struct ConsoleSession: Sendable {
    static let cookie = "omnirun_session"
    static let csrfHeader = HTTPField.Name("X-OmniRun-CSRF")!
    let key: Data
    /// Whether cookies get `Secure` (the server's public URL is https).
    let secure: Bool

    func csrf(for token: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data("console-csrf:\(token)".utf8), using: SymmetricKey(data: key))
            .map { String(format: "%02x", $0) }.joined()
    }

    /// The session's key from a request's cookies, if it has one.
    static func token(in request: Request) -> String? {
        for field in request.headers[values: .cookie] {
            for pair in field.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == cookie {
                    let value = parts[1].trimmingCharacters(in: .whitespaces)
                    return value.isEmpty || value.count > 256 ? nil : value
                }
            }
        }
        return nil
    }

    /// Whether a request may act with its cookie: reads always, anything else with the token.
    func admits(_ request: Request, token: String) -> Bool {
        if [.get, .head, .options].contains(request.method) { return true }
        guard let offered = request.headers[Self.csrfHeader] else { return false }
        return Secrets.equal(offered, csrf(for: token))
    }

    /// `Set-Cookie` for a new session (until `expiresAt`, or the browser's session).
    func setCookie(_ token: String, expiresAt: Int64?) -> String {
        var value = "\(Self.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict"
        if let expiresAt { value += "; Max-Age=\(max(0, (expiresAt - nowMillis()) / 1000))" }
        if secure { value += "; Secure" }
        return value
    }

    /// `Set-Cookie` that ends the session in the browser.
    var clearCookie: String {
        "\(Self.cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" + (secure ? "; Secure" : "")
    }
}
