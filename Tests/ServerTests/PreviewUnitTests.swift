import NIOCore
import Testing

@testable import OmniRunControl
@testable import OmniRunServer

@Suite("Preview gateway: request framing and access")
struct PreviewUnitTests {
    static func feed(_ pieces: [String], into framer: inout RequestFramer) throws -> [RequestFramer.Event] {
        var events: [RequestFramer.Event] = []
        for piece in pieces { events += try framer.feed(ByteBuffer(string: piece)) }
        return events
    }

    /// Joins consecutive body events, so that splits at any byte compare equal.
    static func normalized(_ events: [RequestFramer.Event]) -> [String] {
        var out: [String] = []
        var body = ""
        for event in events {
            switch event {
            case .head(let head):
                if !body.isEmpty { out.append("body:" + body); body = "" }
                out.append("head:\(head.method) \(head.target) host=\(head.value("host") ?? "-")")
            case .body(let buffer):
                body += String(buffer: buffer)
            }
        }
        if !body.isEmpty { out.append("body:" + body) }
        return out
    }

    static let stream =
        "GET /a HTTP/1.1\r\nHost: one.localhost:8081\r\n\r\n"
        + "POST /b HTTP/1.1\r\nHost: one.localhost\r\nContent-Length: 5\r\n\r\nhello"
        + "POST /c HTTP/1.1\r\nHost: one.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n"
        + "GET /ws HTTP/1.1\r\nHost: one.localhost\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"
        + "\u{1}\u{2}GET /not-a-request HTTP/1.1\r\n\r\n"

    @Test func framesPipelinedRequestsAtEverySplit() throws {
        var whole = RequestFramer()
        let expected = Self.normalized(try Self.feed([Self.stream], into: &whole))
        #expect(expected == [
            "head:GET /a host=one.localhost:8081",
            "head:POST /b host=one.localhost", "body:hello",
            "head:POST /c host=one.localhost", "body:3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
            "head:GET /ws host=one.localhost",
            // After an upgrade everything passes unparsed.
            "body:\u{1}\u{2}GET /not-a-request HTTP/1.1\r\n\r\n",
        ])
        let bytes = Array(Self.stream.utf8)
        for split in stride(from: 1, to: bytes.count, by: 3) {
            var framer = RequestFramer()
            var events = try framer.feed(ByteBuffer(bytes: bytes[..<split]))
            events += try framer.feed(ByteBuffer(bytes: bytes[split...]))
            #expect(Self.normalized(events) == expected, "split at \(split)")
        }
    }

    @Test func refusesMalformedAndHugeHeads() throws {
        var framer = RequestFramer()
        #expect(throws: (any Error).self) { _ = try framer.feed(ByteBuffer(string: "NONSENSE\r\n\r\n")) }
        var conflicting = RequestFramer()
        #expect(throws: (any Error).self) {
            _ = try conflicting.feed(ByteBuffer(string: "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"))
        }
        var huge = RequestFramer()
        #expect(throws: (any Error).self) {
            _ = try huge.feed(ByteBuffer(string: "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 70_000)))
        }
    }

    @Test func queryTokenCookiesAndConstantTimeCompare() {
        let (target, value) = PreviewAccess.takeQuery("omnirun_token", from: "/app?x=1&omnirun_token=abc&y=2")
        #expect(target == "/app?x=1&y=2")
        #expect(value == "abc")
        let bare = PreviewAccess.takeQuery("omnirun_token", from: "/?omnirun_token=abc")
        #expect(bare.target == "/" && bare.value == "abc")
        #expect(PreviewAccess.takeQuery("omnirun_token", from: "/plain").value == nil)
        let head = try! RequestHead.parse("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; omnirun_preview=tok; b=2")
        #expect(PreviewAccess.cookieValue("omnirun_preview", in: head) == "tok")
        #expect(Secrets.equal("abc", "abc"))
        #expect(!Secrets.equal("abc", "abd"))
        #expect(!Secrets.equal("abc", "abcd"))
        #expect(Secrets.sha256Hex("x").count == 64)
    }

    @Test func hostNamesWithoutPorts() throws {
        #expect(try RequestHead.parse("GET / HTTP/1.1\r\nHost: Sb_abc-80.LocalHost:8081").hostName == "sb_abc-80.localhost")
        #expect(try RequestHead.parse("GET / HTTP/1.1\r\nHost: [::1]:80").hostName == "[::1]")
        #expect(try RequestHead.parse("GET / HTTP/1.1").hostName == nil)
        var head = try RequestHead.parse("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nhost: b")
        head.set("Host", "c")
        #expect(head.values("host") == ["c"])
        #expect(head.fields.first?.name == "Host")
    }
}

@Suite("Preview gateway: per-request policy")
struct PreviewPolicyTests {
    static let token = String(repeating: "ab", count: 32)

    @Test func secureModeAndPrivateTokensOnEveryRequest() throws {
        let policy = PreviewPolicy(
            hostName: "app-1.localhost", trafficTokenHash: Secrets.sha256Hex(Self.token), exposureTokens: ["secret"],
            hostOverride: "localhost:8000", scheme: "http")
        let good = try RequestHead.parse(
            "GET /x?omnirun_token=secret&a=1 HTTP/1.1\r\nHost: app-1.localhost:8081\r\ne2b-traffic-access-token: \(Self.token)")
        #expect(policy.admits(good))
        let cookie = try RequestHead.parse(
            "GET /x HTTP/1.1\r\nHost: app-1.localhost\r\nCookie: omnirun_preview=secret\r\ne2b-traffic-access-token: \(Self.token)")
        #expect(policy.admits(cookie))
        #expect(!policy.admits(try RequestHead.parse("GET /x HTTP/1.1\r\nHost: app-1.localhost\r\nCookie: omnirun_preview=secret")))
        #expect(!policy.admits(try RequestHead.parse(
            "GET /x HTTP/1.1\r\nHost: app-1.localhost\r\ne2b-traffic-access-token: \(Self.token)")))
        // Another host on the same connection is refused.
        #expect(!policy.admits(try RequestHead.parse(
            "GET /x HTTP/1.1\r\nHost: other.localhost\r\nCookie: omnirun_preview=secret\r\ne2b-traffic-access-token: \(Self.token)")))

        let rewritten = policy.rewrite(try RequestHead.parse(
            "GET /x?omnirun_token=secret&a=1 HTTP/1.1\r\nHost: app-1.localhost:8081\r\nCookie: a=1; omnirun_preview=secret\r\ne2b-traffic-access-token: \(Self.token)\r\nx-omnirun-exposure-token: secret"))
        #expect(rewritten.target == "/x?a=1")
        #expect(rewritten.value("host") == "localhost:8000")
        #expect(rewritten.value("x-forwarded-host") == "app-1.localhost:8081")
        #expect(rewritten.value("cookie") == "a=1")
        #expect(rewritten.value("e2b-traffic-access-token") == nil)
        #expect(rewritten.value("x-omnirun-exposure-token") == nil)
        // The mark of a connection handed on by another node never reaches the sandbox.
        let handedOn = policy.rewrite(try RequestHead.parse("GET / HTTP/1.1\r\nHost: app-1.localhost\r\nX-OmniRun-Relayed-By: node-1"))
        #expect(handedOn.value("x-omnirun-relayed-by") == nil)
    }

    @Test func publicPolicyKeepsTheHost() throws {
        let policy = PreviewPolicy(hostName: "sb_abc12345-8000.localhost", trafficTokenHash: nil, exposureTokens: [], hostOverride: nil, scheme: "http")
        let head = try RequestHead.parse("GET /?omnirun_token=kept HTTP/1.1\r\nHost: sb_abc12345-8000.localhost:9000")
        #expect(policy.admits(head))
        let rewritten = policy.rewrite(head)
        #expect(rewritten.value("host") == "sb_abc12345-8000.localhost:9000")
        #expect(rewritten.target == "/?omnirun_token=kept")
    }
}
