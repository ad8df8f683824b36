import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A real SMTP server (aiosmtpd) with STARTTLS and AUTH, and a server that sends its
/// sign-in mail there.
enum MailHarness {
    struct Setup: Sendable {
        let server: TestServer
        let smtp: HelperProcess
        let maildir: String
    }

    static let shared = Task<Setup, any Error> {
        let directory = TestRuntime.dataDirectory + "/smtp-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory + "/mail", withIntermediateDirectories: true)
        // A certificate of our own, trusted by the server through OMNIRUN_SMTP_CA_FILE.
        try await run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", directory + "/key.pem",
                "-out", directory + "/cert.pem",
            ])
        let python = try Python.interpreter(importing: "aiosmtpd")
        let smtp = try await HelperProcess.start(
            python,
            [
                Python.script("smtp-capture.py"), "--maildir", directory + "/mail", "--cert", directory + "/cert.pem",
                "--key", directory + "/key.pem", "--auth", "mailer:s3cret-smtp",
            ], logPath: directory + "/smtp.log")
        let server = try await TestServer.start(
            name: "auth",
            environment: [
                "OMNIRUN_SMTP_HOST": "127.0.0.1", "OMNIRUN_SMTP_PORT": "\(smtp.port)", "OMNIRUN_SMTP_SECURITY": "starttls",
                "OMNIRUN_SMTP_USERNAME": "mailer", "OMNIRUN_SMTP_PASSWORD": "s3cret-smtp",
                "OMNIRUN_SMTP_CA_FILE": directory + "/cert.pem", "OMNIRUN_SMTP_FROM": "OmniRun <signin@omnirun.test>",
                "OMNIRUN_SIGNIN_EMAIL_LIMIT": "20", "OMNIRUN_SIGNUP": "open",
            ], logLevel: "info")
        return Setup(server: server, smtp: smtp, maildir: directory + "/mail")
    }

    static func run(_ executable: String, _ arguments: [String]) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestSetupError("\(executable) failed") }
    }

    /// Waits for the newest message to `email` in `directory` (the SMTP capture or an outbox).
    static func message(to email: String, in directory: String, after: Int = 0, timeout: TimeInterval = 30) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".eml") }
            let messages = names.sorted().compactMap { try? String(contentsOfFile: directory + "/" + $0, encoding: .utf8) }
                .filter { $0.contains("To: \(email)") }
            if messages.count > after { return messages[after] }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestSetupError("no mail to \(email) arrived in \(directory)")
    }

    static func code(in message: String) -> String? {
        message.firstMatch(of: /sign-in code is ([0-9]{6})/).map { String($0.1) }
    }

    static func linkToken(in message: String) -> String? {
        message.firstMatch(of: /magic-link\/verify\?token=([A-Za-z0-9_-]+)/).map { String($0.1) }
    }

    static func email(_ label: String) -> String {
        "\(label)-\(UUID().uuidString.prefix(8).lowercased())@example.test"
    }
}

@Suite("Sign-in by email and API tokens", .timeLimit(.minutes(10)))
struct AuthTests {
    @Test func signInWithTheEmailedCode() async throws {
        let setup = try await MailHarness.shared.value
        let anonymous = HTTPTestClient(baseURL: setup.server.baseURL, apiKey: nil)
        let email = MailHarness.email("code")
        let requested = try await anonymous.post("/auth/magic-link/request", ["email": email.uppercased()])
        #expect(requested.status == 200, "\(requested.text)")
        #expect(requested.object["expiresIn"] as? Int == 600)
        let message = try await MailHarness.message(to: email, in: setup.maildir)
        // Delivered over STARTTLS, with the configured credentials and sender.
        #expect(message.contains("X-TLS: yes"))
        #expect(message.contains("X-Authenticated: yes"))
        #expect(message.contains("From: OmniRun <signin@omnirun.test>"))
        let code = try #require(MailHarness.code(in: message))
        #expect(MailHarness.linkToken(in: message) != nil)

        let wrong = code == "000000" ? "111111" : "000000"
        let refused = try await anonymous.post("/auth/otp/verify", ["email": email, "code": wrong])
        #expect(refused.status == 401)
        #expect(refused.object["error"] as? String == "unauthorized")
        #expect((refused.object["message"] as? String)?.contains("4 more tries") == true)

        let verified = try await anonymous.post("/auth/otp/verify", ["email": email, "code": code])
        #expect(verified.status == 200, "\(verified.text)")
        let token = try #require(verified.object["token"] as? String)
        #expect(token.hasPrefix("omr_"))
        #expect(verified.object["newAccount"] as? Bool == true)

        // The token works as an API key; the account and its vault exist.
        let client = HTTPTestClient(baseURL: setup.server.baseURL, apiKey: token)
        let me = try await client.get("/auth/me")
        #expect(me.status == 200)
        #expect(me.object["email"] as? String == email)
        let limits = me.object["limits"] as? [String: Any] ?? [:]
        #expect(limits["concurrentSandboxes"] as? Int == 3)
        #expect(limits["spendCapCents"] as? Int == 500)
        let spend = me.object["spend"] as? [String: Any] ?? [:]
        #expect(spend["remainingCents"] as? Double == 500)
        let vault = try await client.post("/vault/init")
        #expect(vault.object["initialized"] as? Bool == true)
        #expect(try await client.get("/sandboxes").status == 200)

        // A used code is refused; a second sign-in finds the same account.
        let reused = try await anonymous.post("/auth/otp/verify", ["email": email, "code": code])
        #expect(reused.status == 401)
        #expect((reused.object["message"] as? String)?.contains("already used") == true)
        _ = try await anonymous.post("/auth/magic-link/request", ["email": email])
        let second = try await MailHarness.message(to: email, in: setup.maildir, after: 1)
        let again = try await anonymous.post("/auth/otp/verify", ["email": email, "code": try #require(MailHarness.code(in: second))])
        #expect(again.status == 200)
        #expect(again.object["newAccount"] as? Bool == false)
        #expect((again.object["account"] as? [String: Any])?["id"] as? String == me.object["id"] as? String)
    }

    @Test func theEmailedLinkSignsInOnce() async throws {
        let setup = try await MailHarness.shared.value
        let anonymous = HTTPTestClient(baseURL: setup.server.baseURL, apiKey: nil)
        let email = MailHarness.email("link")
        _ = try await anonymous.post("/auth/magic-link/request", ["email": email])
        let message = try await MailHarness.message(to: email, in: setup.maildir)
        let token = try #require(MailHarness.linkToken(in: message))
        // Opening the link shows a page and signs nobody in (mail scanners fetch links).
        let page = try await anonymous.get("/auth/magic-link/verify?token=\(token)")
        #expect(page.status == 200)
        #expect(page.header("Content-Type")?.hasPrefix("text/html") == true)
        let signedIn = try await anonymous.post("/auth/magic-link/verify", ["token": token])
        #expect(signedIn.status == 200, "\(signedIn.text)")
        #expect((signedIn.object["token"] as? String)?.hasPrefix("omr_") == true)
        let twice = try await anonymous.post("/auth/magic-link/verify", ["token": token])
        #expect(twice.status == 401)
        let code = try #require(MailHarness.code(in: message))
        #expect(try await anonymous.post("/auth/otp/verify", ["email": email, "code": code]).status == 401)
        #expect(try await anonymous.post("/auth/magic-link/verify", ["token": "not-a-real-token"]).status == 401)
    }

    @Test func fiveWrongCodesLockTheCode() async throws {
        let setup = try await MailHarness.shared.value
        let anonymous = HTTPTestClient(baseURL: setup.server.baseURL, apiKey: nil)
        let email = MailHarness.email("lock")
        _ = try await anonymous.post("/auth/magic-link/request", ["email": email])
        let code = try #require(MailHarness.code(in: try await MailHarness.message(to: email, in: setup.maildir)))
        let wrong = code == "999999" ? "999998" : "999999"
        var statuses: [Int] = []
        for _ in 0..<5 { statuses.append(try await anonymous.post("/auth/otp/verify", ["email": email, "code": wrong]).status) }
        #expect(statuses == [401, 401, 401, 401, 429])
        let locked = try await anonymous.post("/auth/otp/verify", ["email": email, "code": code])
        #expect(locked.status == 429)
        #expect((locked.object["message"] as? String)?.contains("locked") == true)
    }

    @Test func badSignInInputIsAClear4xx() async throws {
        let setup = try await MailHarness.shared.value
        let anonymous = HTTPTestClient(baseURL: setup.server.baseURL, apiKey: nil)
        for bad in ["not-an-email", "a@b", "two@@example.test", "spa ce@example.test", "x@-bad-.test", ""] {
            let reply = try await anonymous.post("/auth/magic-link/request", ["email": bad])
            #expect(reply.status == 400, "\(bad): \(reply.text)")
            #expect(reply.object["error"] as? String == "invalid_argument")
        }
        #expect(try await anonymous.post("/auth/magic-link/request", [:]).status == 400)
        let malformed = try await anonymous.request(
            "POST", "/auth/otp/verify", body: Data("{nope".utf8), contentType: "application/json")
        #expect(malformed.status == 400)
        #expect(try await anonymous.post("/auth/otp/verify", ["email": "a@example.test", "code": "12ab56"]).status == 400)
        let never = try await anonymous.post("/auth/otp/verify", ["email": MailHarness.email("never"), "code": "123456"])
        #expect(never.status == 401)
        #expect(never.object["error"] as? String == "unauthorized")
        #expect(try await anonymous.post("/auth/mfa/totp/verify", ["code": "123456"]).status == 501)
    }

    @Test func tokensAreCreatedListedRevokedAndExpire() async throws {
        let setup = try await MailHarness.shared.value
        let server = setup.server
        let owner = server.client(key: try server.createKey(email: MailHarness.email("tokens")))
        let created = try await owner.post("/auth/tokens", ["name": "ci"])
        #expect(created.status == 201, "\(created.text)")
        let token = try #require(created.object["token"] as? String)
        let id = try #require(created.object["id"] as? String)
        #expect(token.hasPrefix("omr_"))
        let viaToken = HTTPTestClient(baseURL: server.baseURL, apiKey: token)
        #expect(try await viaToken.get("/auth/me").status == 200)
        let list = try await owner.get("/auth/tokens")
        #expect(list.array.contains { $0["id"] as? String == id && $0["name"] as? String == "ci" })
        #expect(!list.text.contains(token))

        // Another account can neither see nor revoke it.
        let stranger = server.client(key: try server.createKey(email: MailHarness.email("stranger")))
        #expect(try await stranger.delete("/auth/tokens/\(id)").status == 404)
        #expect(!(try await stranger.get("/auth/tokens").text.contains(id)))

        #expect(try await owner.delete("/auth/tokens/\(id)").status == 204)
        let revoked = try await viaToken.get("/auth/me")
        #expect(revoked.status == 401)
        #expect((revoked.object["message"] as? String)?.contains("revoked") == true)
        let unknown = try await HTTPTestClient(baseURL: server.baseURL, apiKey: "omr_" + String(repeating: "x", count: 43)).get("/auth/me")
        #expect(unknown.status == 401)
        #expect((unknown.object["message"] as? String)?.contains("no such key") == true)

        let short = try await owner.post("/auth/tokens", ["name": "short", "expiresIn": 1])
        let shortToken = try #require(short.object["token"] as? String)
        #expect(short.object["expiresAt"] as? String != nil)
        try await Task.sleep(for: .seconds(1.5))
        let expired = try await HTTPTestClient(baseURL: server.baseURL, apiKey: shortToken).get("/auth/me")
        #expect(expired.status == 401)
        #expect((expired.object["message"] as? String)?.contains("expired") == true)
        #expect(try await owner.post("/auth/tokens", ["name": "bad", "expiresIn": -3]).status == 400)
        #expect(try await owner.post("/auth/tokens", ["name": ""]).status == 400)
        #expect(try await owner.post("/auth/tokens", ["expiresAt": "yesterday"]).status == 400)
    }
}

/// With no SMTP server configured, sign-in mail goes to the outbox (not the log).
@Suite("Sign-in without SMTP", .timeLimit(.minutes(10)))
struct OutboxTests {
    @Test func outboxExpiryAndRateLimits() async throws {
        let server = try await TestServer.start(
            name: "mbox", environment: ["OMNIRUN_SIGNIN_CODE_TTL": "2", "OMNIRUN_SIGNIN_EMAIL_LIMIT": "3", "OMNIRUN_SIGNUP": "open"],
            logLevel: "info")
        do {
            let anonymous = HTTPTestClient(baseURL: server.baseURL, apiKey: nil)
            let email = MailHarness.email("outbox")
            #expect(try await anonymous.post("/auth/magic-link/request", ["email": email]).status == 200)
            let message = try await MailHarness.message(to: email, in: server.dataDirectory + "/outbox")
            let code = try #require(MailHarness.code(in: message))
            #expect(!server.fullLog().contains(code), "the code is never logged (only the outbox has it)")
            try await Task.sleep(for: .seconds(2.5))
            let expired = try await anonymous.post("/auth/otp/verify", ["email": email, "code": code])
            #expect(expired.status == 401)
            #expect((expired.object["message"] as? String)?.contains("expired") == true)
            // Per address: 3 emails per window, then 429.
            #expect(try await anonymous.post("/auth/magic-link/request", ["email": email]).status == 200)
            #expect(try await anonymous.post("/auth/magic-link/request", ["email": email]).status == 200)
            let limited = try await anonymous.post("/auth/magic-link/request", ["email": email])
            #expect(limited.status == 429)
            #expect(limited.object["error"] as? String == "limit_reached")
            #expect(try await anonymous.post("/auth/magic-link/request", ["email": MailHarness.email("other")]).status == 200)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
