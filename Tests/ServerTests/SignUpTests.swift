import Foundation
import NIOCore
import NIOPosix
import Testing
import TestSupport

/// Accounts as a stranger meets them, on real servers (mail goes to the outbox): who may
/// sign up, codes kept out of the log, parallel guessing, and `X-Forwarded-For`.
@Suite("Sign-up policy, sign-in codes and client addresses", .serialized, .timeLimit(.minutes(10)))
struct SignUpTests {
    static func outbox(_ server: TestServer) -> String { server.dataDirectory + "/outbox" }

    static func messages(_ server: TestServer) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: outbox(server))) ?? []).filter { $0.hasSuffix(".eml") }
    }

    static func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    /// `POST /auth/magic-link/request` from a chosen local source address (127.0.0.2 is not
    /// a trusted proxy), over a raw connection.
    static func request(port: Int, from source: String, email: String, forwardedFor: String?) async throws -> Int {
        let body = Array("{\"email\":\"\(email)\"}".utf8)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(to: try SocketAddress(ipAddress: source, port: 0))
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try RawHTTPClient.Channel(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            let connection = RawHTTPClient.Connection(inbound: inbound, outbound: outbound)
            var head = "POST /auth/magic-link/request HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            if let forwardedFor { head += "X-Forwarded-For: \(forwardedFor)\r\n" }
            head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            try await connection.send(head)
            try await connection.send(body)
            return try await connection.readResponse().status
        }
    }

    /// No `OMNIRUN_SIGNUP`: closed. A stranger gets a 403 and no mail; an account made with
    /// `omnirun key create` signs in by email. Codes and links reach the outbox (0600 files
    /// in a 0700 folder) and never the log, even at info level.
    @Test func closedByDefaultAndCodesStayOutOfTheLog() async throws {
        let server = try await TestServer.start(name: "signup-closed", logLevel: "info")
        do {
            let anonymous = HTTPTestClient(baseURL: server.baseURL, apiKey: nil)
            let stranger = MailHarness.email("stranger")
            let refused = try await anonymous.post("/auth/magic-link/request", ["email": stranger])
            #expect(refused.status == 403, "\(refused.text)")
            #expect(refused.object["error"] as? String == "forbidden")
            #expect((refused.object["message"] as? String)?.contains("omnirun key create") == true)
            #expect(Self.messages(server).isEmpty, "no mail goes to an address that cannot sign up")
            #expect(try await anonymous.post("/auth/otp/verify", ["email": stranger, "code": "123456"]).status == 401)

            let member = MailHarness.email("member")
            _ = try server.createKey(email: member)
            let requested = try await anonymous.post("/auth/magic-link/request", ["email": member])
            #expect(requested.status == 200, "\(requested.text)")
            let message = try await MailHarness.message(to: member, in: Self.outbox(server))
            let code = try #require(MailHarness.code(in: message))
            let link = try #require(MailHarness.linkToken(in: message))
            let signedIn = try await anonymous.post("/auth/otp/verify", ["email": member, "code": code])
            #expect(signedIn.status == 200 && signedIn.object["newAccount"] as? Bool == false, "\(signedIn.text)")

            #expect(Self.mode(Self.outbox(server)) == 0o700)
            for name in Self.messages(server) { #expect(Self.mode(Self.outbox(server) + "/" + name) == 0o600, "\(name)") }
            let log = server.fullLog()
            #expect(log.contains("the message is in the outbox"), "the log says where the mail went")
            #expect(!log.contains(code), "the sign-in code is in the server log")
            #expect(!log.contains(link), "the sign-in link is in the server log")
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test func allowListParallelGuessesAndForwardedFor() async throws {
        let server = try await TestServer.start(
            name: "signup-list",
            environment: [
                "OMNIRUN_SIGNUP": "allowed.test, vip@else.test", "OMNIRUN_TRUSTED_PROXIES": "127.0.0.1",
                "OMNIRUN_SIGNIN_IP_LIMIT": "3", "OMNIRUN_SIGNIN_EMAIL_LIMIT": "20",
            ])
        do {
            let port = server.port
            // Each check below comes from a client address of its own (through the trusted proxy).
            func ask(_ email: String, as client: String) async throws -> HTTPTestClient.Reply {
                try await HTTPTestClient(baseURL: server.baseURL, apiKey: nil).request(
                    "POST", "/auth/magic-link/request", json: ["email": email], headers: ["X-Forwarded-For": client])
            }

            // The allow-list: its domain (not subdomains) and its one address.
            #expect(try await ask("alice@allowed.test", as: "198.51.100.10").status == 200)
            #expect(try await ask("vip@else.test", as: "198.51.100.11").status == 200)
            #expect(try await ask("eve@else.test", as: "198.51.100.11").status == 403)
            #expect(try await ask("mallory@sub.allowed.test", as: "198.51.100.11").status == 403)
            let aliceMail = try await MailHarness.message(to: "alice@allowed.test", in: Self.outbox(server))
            let anonymous = HTTPTestClient(baseURL: server.baseURL, apiKey: nil)
            let alice = try await anonymous.post(
                "/auth/otp/verify", ["email": "alice@allowed.test", "code": try #require(MailHarness.code(in: aliceMail))])
            #expect(alice.status == 200 && alice.object["newAccount"] as? Bool == true, "\(alice.text)")

            // Fifty wrong guesses and the right code at once: five tries between them.
            let racer = MailHarness.email("race").replacingOccurrences(of: "example.test", with: "allowed.test")
            #expect(try await ask(racer, as: "198.51.100.12").status == 200)
            let code = try #require(MailHarness.code(in: try await MailHarness.message(to: racer, in: Self.outbox(server))))
            let wrong = code == "000000" ? "000001" : "000000"
            let (statuses, footprint) = try await AttackFootprint.measure(
                "50 parallel wrong sign-in codes + the right one", server: server, outcome: "refused: 5 tries in all, then 429"
            ) {
                try await withThrowingTaskGroup(of: (Bool, Int, String).self) { group in
                    for index in 0..<51 {
                        group.addTask {
                            let guess = index == 25 ? code : wrong
                            let reply = try await anonymous.post("/auth/otp/verify", ["email": racer, "code": guess])
                            return (index == 25, reply.status, reply.object["message"] as? String ?? "")
                        }
                    }
                    var all: [(Bool, Int, String)] = []
                    for try await result in group { all.append(result) }
                    return all
                }
            }
            // A guess that was compared answers 200, 401, or 429 "that was the last try"; one
            // that found no try left answers 429 without comparing.
            let compared = statuses.filter { $0.1 == 401 || $0.1 == 200 || ($0.1 == 429 && $0.2.contains("last try")) }.count
            let refused = statuses.filter { $0.1 == 429 && !$0.2.contains("last try") }.count
            let rightWon = statuses.contains { $0.0 && $0.1 == 200 }
            #expect(compared <= 5 && compared + refused == 51, "compared \(compared), refused \(refused): \(statuses.map(\.1))")
            #expect(rightWon || compared == 5, "compared \(compared)")
            #expect(footprint.descriptors.after <= footprint.descriptors.before + 8, "\(footprint.descriptors)")
            let afterwards = try await anonymous.post("/auth/otp/verify", ["email": racer, "code": code])
            #expect(afterwards.status == (rightWon ? 401 : 429), "the right code after the tries are spent: \(afterwards.text)")
            // Fifty wrong guesses first: the right code is then refused.
            let second = MailHarness.email("race2").replacingOccurrences(of: "example.test", with: "allowed.test")
            #expect(try await ask(second, as: "198.51.100.13").status == 200)
            let secondCode = try #require(MailHarness.code(in: try await MailHarness.message(to: second, in: Self.outbox(server))))
            let secondWrong = secondCode == "000000" ? "000001" : "000000"
            try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let reply = try await anonymous.post("/auth/otp/verify", ["email": second, "code": secondWrong])
                        return (reply.status, reply.object["message"] as? String ?? "")
                    }
                }
                var answers: [(Int, String)] = []
                for try await answer in group { answers.append(answer) }
                // Exactly five compared: four 401s and the last try's 429; 45 found no try left.
                #expect(answers.filter { $0.0 == 401 }.count == 4, "\(answers.map(\.0))")
                #expect(answers.filter { $0.0 == 429 && $0.1.contains("last try") }.count == 1)
                #expect(answers.filter { $0.0 == 429 && !$0.1.contains("last try") }.count == 45)
            }
            let spent = try await anonymous.post("/auth/otp/verify", ["email": second, "code": secondCode])
            #expect(spent.status == 429 && (spent.object["message"] as? String)?.contains("locked") == true, "\(spent.text)")

            // X-Forwarded-For from a peer that is not a trusted proxy is ignored: a new address
            // in every request still counts against 127.0.0.2 (3 per window).
            var fromUntrusted: [Int] = []
            for index in 0..<4 {
                fromUntrusted.append(
                    try await Self.request(
                        port: port, from: "127.0.0.2", email: "spoof\(index)@allowed.test", forwardedFor: "203.0.113.\(index + 1)"))
            }
            #expect(fromUntrusted == [200, 200, 200, 429], "\(fromUntrusted)")
            // Through the trusted proxy the nearest untrusted hop counts; a forged left part changes nothing.
            var forged: [Int] = []
            for index in 0..<4 {
                forged.append(try await ask("forged\(index)@allowed.test", as: "6.6.6.\(index + 1), 198.51.100.20").status)
            }
            #expect(forged == [200, 200, 200, 429], "\(forged)")
            #expect(try await ask("fresh@allowed.test", as: "198.51.100.21").status == 200, "another client has its own limit")
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
