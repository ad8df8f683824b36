import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The web console's session from the outside: the cookie a sign-in sets, what it may do
/// without the CSRF token (read) and with a wrong one (nothing), a forged or oversized cookie,
/// a signed-out cookie; and the console's files, which never reach outside its folder.
@Suite("Control plane: the console's session")
struct ConsoleSessionTests {
    struct Answer {
        var status: Int
        var headers: HTTPFields
        var text: String
    }

    func send(
        _ plane: ControlPlane, _ method: HTTPRequest.Method, _ path: String, headers extra: [String: String] = [:], json: String? = nil
    ) async throws -> Answer {
        var headers = HTTPFields()
        for (name, value) in extra { headers[.init(name)!] = value }
        if json != nil { headers[.contentType] = "application/json" }
        let response = try await plane.client.executeRequest(
            uri: path, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
        return Answer(status: Int(response.status.code), headers: response.headers, text: String(buffer: response.body))
    }

    /// Signs the owner in as the page does: a code by email (the outbox), then the session.
    func signIn(_ plane: ControlPlane) async throws -> (cookie: String, csrf: String, setCookie: String) {
        let email = plane.configuration.ownerEmail
        let asked = try await send(plane, .post, "/auth/magic-link/request", json: #"{"email": "\#(email)"}"#)
        #expect(asked.status == 200, "\(asked.text)")
        let outbox = plane.configuration.dataDirectory + "/outbox"
        let files = try FileManager.default.contentsOfDirectory(atPath: outbox).sorted()
        let mail = try String(contentsOfFile: outbox + "/" + (files.last ?? ""), encoding: .utf8)
        let parts = mail.components(separatedBy: "sign-in code: ")
        let code = String(try #require(parts.dropFirst().first).prefix { $0.isLetter || $0.isNumber || $0 == "-" })
        let session = try await send(plane, .post, "/console/session", json: #"{"email": "\#(email)", "code": "\#(code)"}"#)
        #expect(session.status == 201, "\(session.text)")
        let setCookie = try #require(session.headers[.setCookie])
        let cookie = String(setCookie.split(separator: ";").first ?? "")
        let csrf = try #require((try JSONSerialization.jsonObject(with: Data(session.text.utf8)) as? [String: Any])?["csrf"] as? String)
        return (cookie, csrf, setCookie)
    }

    @Test func theCookieReadsAndOnlyItsCSRFTokenChangesThings() async throws {
        try await ControlPlane.run({ $0.ownerEmail = "owner@example.com" }) { plane in
            let (cookie, csrf, setCookie) = try await signIn(plane)
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && setCookie.contains("Path=/"), "\(setCookie)")
            #expect(!setCookie.contains("Secure"), "an http server's cookie")
            // Reads need only the cookie.
            #expect(try await send(plane, .get, "/sandboxes", headers: ["Cookie": cookie]).status == 200)
            let who = try await send(plane, .get, "/console/session", headers: ["Cookie": "other=1; \(cookie)"])
            #expect(who.status == 200 && who.text.contains(csrf), "\(who.text)")
            // A change without the token, with another's, or with the token and no cookie: refused.
            #expect(try await send(plane, .post, "/sandboxes", headers: ["Cookie": cookie], json: "{}").status == 403)
            let wrong = try await send(
                plane, .post, "/sandboxes", headers: ["Cookie": cookie, "X-OmniRun-CSRF": String(repeating: "0", count: 64)], json: "{}")
            #expect(wrong.status == 403)
            #expect(wrong.text.contains("CSRF"), "\(wrong.text)")
            #expect(try await send(plane, .post, "/sandboxes", headers: ["X-OmniRun-CSRF": csrf], json: "{}").status == 401)
            #expect(plane.driver.liveMachines.isEmpty, "no refused request started a machine")
            // With both: the sandbox is made, and killed the same way.
            let made = try await send(plane, .post, "/sandboxes", headers: ["Cookie": cookie, "X-OmniRun-CSRF": csrf], json: "{}")
            #expect(made.status == 201, "\(made.text)")
            let id = try #require((try JSONSerialization.jsonObject(with: Data(made.text.utf8)) as? [String: Any])?["sandboxID"] as? String)
            #expect(try await send(plane, .delete, "/sandboxes/\(id)", headers: ["Cookie": cookie]).status == 403)
            #expect(try await send(plane, .delete, "/sandboxes/\(id)", headers: ["Cookie": cookie, "X-OmniRun-CSRF": csrf]).status == 204)
            // Forged, oversized and empty cookies are no session.
            for forged in ["omnirun_session=omr_forged", "omnirun_session=" + String(repeating: "a", count: 300), "omnirun_session="] {
                #expect(try await send(plane, .get, "/sandboxes", headers: ["Cookie": forged]).status == 401, "\(forged.prefix(40))")
            }
            // Signing out clears the cookie and revokes the session: the old cookie is refused.
            let out = try await send(plane, .delete, "/console/session", headers: ["Cookie": cookie, "X-OmniRun-CSRF": csrf])
            #expect(out.status == 204)
            #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true)
            #expect(try await send(plane, .get, "/sandboxes", headers: ["Cookie": cookie]).status == 401)
        }
    }

    /// The emailed link's URL (from the outbox), sent to `email` after `request`.
    func emailedLink(_ plane: ControlPlane, email: String) async throws -> String {
        let asked = try await send(plane, .post, "/auth/magic-link/request", json: #"{"email": "\#(email)"}"#)
        #expect(asked.status == 200, "\(asked.text)")
        let outbox = plane.configuration.dataDirectory + "/outbox"
        let files = try FileManager.default.contentsOfDirectory(atPath: outbox).sorted()
        let mail = try String(contentsOfFile: outbox + "/" + (files.last ?? ""), encoding: .utf8)
        let start = try #require(mail.range(of: "/auth/magic-link/verify?token="))
        let token = mail[start.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
        return "/auth/magic-link/verify?token=" + token
    }

    @Test func theEmailedLinkSignsTheConsoleInOnce() async throws {
        try await ControlPlane.run({ $0.ownerEmail = "owner@example.com" }) { plane in
            let link = try await emailedLink(plane, email: "owner@example.com")
            let token = String(try #require(link.split(separator: "=").last))
            // Opening the link (twice, as a mail scanner and then the person) uses nothing up:
            // the page offers the console and an API token; it is not cached, framed or referred.
            for _ in 0..<2 {
                let page = try await send(plane, .get, link)
                #expect(page.status == 200, "\(page.text)")
                #expect(page.text.contains("Open the web console") && page.text.contains("Show an API token"), "\(page.text)")
                #expect(page.headers[.cacheControl] == "no-store")
                #expect(page.headers[.init("Referrer-Policy")!] == "no-referrer")
                #expect(page.headers[.contentSecurityPolicy]?.contains("script-src 'nonce-") == true)
            }
            // The page's "Open the web console": the token makes a console session (the cookie).
            let session = try await send(plane, .post, "/console/session", json: #"{"token": "\#(token)"}"#)
            #expect(session.status == 201, "\(session.text)")
            let setCookie = try #require(session.headers[.setCookie])
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"), "\(setCookie)")
            let cookie = String(setCookie.split(separator: ";").first ?? "")
            let who = try await send(plane, .get, "/console/session", headers: ["Cookie": cookie])
            #expect(who.status == 200 && who.text.contains("owner@example.com"), "\(who.text)")
            #expect(try await send(plane, .get, "/sandboxes", headers: ["Cookie": cookie]).status == 200)
            // The token worked once: neither the console nor the API takes it again.
            let again = try await send(plane, .post, "/console/session", json: #"{"token": "\#(token)"}"#)
            #expect(again.status == 401, "\(again.text)")
            #expect(again.headers[.setCookie] == nil)
            #expect(try await send(plane, .post, "/auth/magic-link/verify", json: #"{"token": "\#(token)"}"#).status == 401)
            // A link that is not one is a clear 400, with no page.
            let bad = try await send(plane, .get, "/auth/magic-link/verify?token=%3Cscript%3E")
            #expect(bad.status == 400, "\(bad.text)")
            #expect(try await send(plane, .get, "/auth/magic-link/verify").status == 400)
        }
    }

    @Test func withoutTheConsoleTheLinkOffersTheAPITokenAlone() async throws {
        try await ControlPlane.run({ $0.ownerEmail = "owner@example.com"; $0.consoleDirectory = nil }) { plane in
            let link = try await emailedLink(plane, email: "owner@example.com")
            let page = try await send(plane, .get, link)
            #expect(page.status == 200)
            #expect(!page.text.contains("Open the web console") && page.text.contains("Show an API token"), "\(page.text)")
            // The API's way still works, once.
            let token = String(try #require(link.split(separator: "=").last))
            let signed = try await send(plane, .post, "/auth/magic-link/verify", json: #"{"token": "\#(token)"}"#)
            #expect(signed.status == 200 && signed.text.contains("omr_"), "\(signed.text)")
            #expect(try await send(plane, .post, "/auth/magic-link/verify", json: #"{"token": "\#(token)"}"#).status == 401)
        }
    }

    @Test func theConsolesFilesStayInItsFolder() async throws {
        try await ControlPlane.run({ $0.ownerEmail = "owner@example.com" }) { plane in
            let page = try await send(plane, .get, "/")
            #expect(page.status == 200)
            #expect(page.headers[.contentSecurityPolicy]?.contains("default-src 'self'") == true)
            #expect(page.headers[.init("X-Frame-Options")!] == "DENY")
            #expect(try await send(plane, .get, "/console/app.js").headers[.contentType]?.hasPrefix("text/javascript") == true)
            for path in [
                "/console/..%2F..%2F..%2Fetc%2Fpasswd", "/console/%2E%2E/Package.swift", "/console/.hidden.js", "/console/index",
                "/console/vendor/xterm/..%2F..%2Fomnirun.db", "/console/" + String(repeating: "a/", count: 20) + "x.js",
            ] {
                #expect(try await send(plane, .get, path).status == 404, "\(path)")
            }
            // The session's other routes are not open.
            #expect(try await send(plane, .get, "/console/session").status == 401)
            #expect(try await send(plane, .delete, "/console/session").status == 401)
            #expect(try await send(plane, .post, "/console/session", json: #"{"email": "owner@example.com", "code": "000000"}"#).status == 401)
        }
    }
}
