import Crypto
import Foundation
import Testing
import TestSupport

/// One server for the exposure tests; each test uses its own account.
enum ExposureServer {
    static let server = Task<TestServer, any Error> {
        try await TestServer.start(name: "preview", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
    }

    static func client(_ label: String) async throws -> (TestServer, HTTPTestClient) {
        let server = try await server.value
        let key = try server.createKey(email: "\(label)-\(UUID().uuidString.prefix(8))@test.local")
        return (server, server.client(key: key))
    }

    /// An HTTP/1.1 server for the guest (standard library only): echoes what it saw as JSON,
    /// streams 20 MiB from `/big`, hashes POST bodies (fixed length or chunked) and echoes
    /// WebSocket frames on `/ws`.
    static let guestServer = #"""
        import base64, hashlib, json, struct, sys
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        def block(i):
            return hashlib.sha256(str(i).encode()).digest() * 32768

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *args):
                pass
            def reply(self, body):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def do_GET(self):
                if self.path == "/ws":
                    return self.websocket()
                if self.path == "/big":
                    self.send_response(200)
                    self.send_header("Content-Length", str(20 << 20))
                    self.end_headers()
                    for i in range(20):
                        self.wfile.write(block(i))
                    return
                seen = {"path": self.path, "host": self.headers.get("Host"), "cookie": self.headers.get("Cookie"),
                        "token": self.headers.get("e2b-traffic-access-token"), "peerPort": self.client_address[1]}
                self.reply(json.dumps(seen).encode())
            def do_POST(self):
                digest, count = hashlib.sha256(), 0
                def take(left):
                    nonlocal count
                    while left:
                        data = self.rfile.read(min(left, 1 << 16))
                        digest.update(data)
                        count += len(data)
                        left -= len(data)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            break
                        take(size)
                        self.rfile.readline()
                else:
                    take(int(self.headers.get("Content-Length", "0")))
                self.reply(json.dumps({"sha256": digest.hexdigest(), "length": count}).encode())
            def websocket(self):
                key = self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", base64.b64encode(hashlib.sha1(key.encode()).digest()).decode())
                self.end_headers()
                self.wfile.flush()
                while True:
                    head = self.rfile.read(2)
                    if len(head) < 2:
                        return
                    opcode, length = head[0] & 15, head[1] & 127
                    if length == 126:
                        length = struct.unpack(">H", self.rfile.read(2))[0]
                    mask = self.rfile.read(4) if head[1] & 128 else b"\0\0\0\0"
                    data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
                    if opcode == 8:
                        self.wfile.write(b"\x88\x00")
                        return
                    size = bytes([length]) if length < 126 else bytes([126]) + struct.pack(">H", length)
                    self.wfile.write(bytes([128 | opcode]) + size + data)

        ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
        """#

    /// Writes the guest server and starts it on `port` in the background.
    static func startGuestServer(_ client: HTTPTestClient, _ id: String, port: Int = 8000) async throws {
        #expect(try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/preview_server.py", "content": guestServer]).status == 200)
        let started = try await client.post(
            "/sandboxes/\(id)/commands", ["command": "python3 /tmp/preview_server.py \(port)", "background": true, "timeout": 0])
        #expect(started.status == 200, "\(started.text)")
    }

    /// Polls an exposure until its status is `status`.
    static func waitFor(_ status: String, _ client: HTTPTestClient, _ path: String, seconds: Double = 60) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any] = [:]
        while Date() < deadline {
            last = try await client.get(path).object
            if last["status"] as? String == status { return last }
            try await Task.sleep(for: .milliseconds(300))
        }
        Issue.record("exposure never became \(status): \(last)")
        return last
    }

    static func json(_ response: RawHTTPClient.Response) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
    }

    /// What `/big` serves: 20 blocks of 1 MiB, each the SHA-256 of its index repeated.
    static func bigDigest() -> String {
        var hash = SHA256()
        for index in 0..<20 {
            let block = Array(SHA256.hash(data: Data("\(index)".utf8)))
            hash.update(data: Array([[UInt8]](repeating: block, count: 32768).joined()))
        }
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

@Suite("Exposures and the preview gateway", .timeLimit(.minutes(10)))
struct ExposureTests {
    @Test func publicExposureThroughTheAgentTunnel() async throws {
        let (server, client) = try await ExposureServer.client("expose")
        let port = server.previewPort
        let id = try await createSandbox(client, ["template": "playground", "timeout": 1800])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        // Air-gapped: no network device, yet the exposure answers.
        let links = try await client.post("/sandboxes/\(id)/commands", ["command": "ls /sys/class/net"])
        #expect(links.object["stdout"] as? String == "lo\n")

        // Created before anything listens: pending, then ready.
        let created = try await client.post("/sandboxes/\(id)/exposures", ["port": 8000, "slug": "my-app"])
        #expect(created.status == 201, "\(created.text)")
        let exposure = created.object
        let expID = exposure["id"] as? String ?? ""
        let hostname = exposure["hostname"] as? String ?? ""
        #expect(exposure["status"] as? String == "pending")
        #expect(exposure["sandboxId"] as? String == id)
        #expect(exposure["port"] as? Int == 8000)
        #expect(exposure["visibility"] as? String == "public")
        #expect(exposure["openPath"] as? String == "/")
        #expect(exposure["preserveHost"] as? Bool == true)
        #expect(exposure["accessUrl"] == nil)
        #expect(hostname.range(of: "^my-app-[0-9a-f]{8}\\.localhost$", options: .regularExpression) != nil, "\(hostname)")
        #expect(exposure["url"] as? String == "http://\(hostname):\(port)/")
        #expect(exposure["createdAt"] is String && exposure["expiresAt"] is String)
        try await ExposureServer.startGuestServer(client, id)
        _ = try await ExposureServer.waitFor("ready", client, "/sandboxes/\(id)/exposures/\(expID)")

        // By the exposure's hostname; the sandbox sees the client's Host (preserveHost).
        let first = try await RawHTTPClient.request(port: port, host: "\(hostname):\(port)", "/hello")
        #expect(first.status == 200)
        #expect(ExposureServer.json(first)["host"] as? String == "\(hostname):\(port)")
        // And by the client-side convention {sandboxID}-{port}.{domain}.
        let convention = try await RawHTTPClient.request(port: port, host: "\(id)-8000.localhost", "/conv")
        #expect(ExposureServer.json(convention)["path"] as? String == "/conv")
        #expect(try await RawHTTPClient.request(port: port, host: "\(id)-8001.localhost", "/").status == 502)
        #expect(try await RawHTTPClient.request(port: port, host: "sb_00000000-8000.localhost", "/").status == 404)
        #expect(try await RawHTTPClient.request(port: port, host: "nothing.example.com", "/").status == 404)

        // Keep-alive: three requests on one client connection reach the guest on one connection.
        let peers = try await RawHTTPClient.with(port: port) { connection in
            var peers: [Int] = []
            for index in 0..<3 {
                try await connection.send("GET /k\(index) HTTP/1.1\r\nHost: \(hostname)\r\n\r\n")
                let reply = try await connection.readResponse()
                #expect(ExposureServer.json(reply)["path"] as? String == "/k\(index)")
                peers.append(ExposureServer.json(reply)["peerPort"] as? Int ?? -1)
            }
            return peers
        }
        #expect(Set(peers).count == 1 && peers[0] > 0, "\(peers)")

        // 20 MiB streamed out intact; 5 MiB streamed in, chunked.
        let digest = try await RawHTTPClient.with(port: port) { connection in
            try await connection.send("GET /big HTTP/1.1\r\nHost: \(hostname)\r\n\r\n")
            var hash = SHA256()
            var count = 0
            let reply = try await connection.readResponse { piece in
                count += piece.readableBytes
                hash.update(data: Array(piece.readableBytesView))
            }
            #expect(reply.status == 200 && count == 20 << 20)
            return hash.finalize().map { String(format: "%02x", $0) }.joined()
        }
        #expect(digest == ExposureServer.bigDigest())
        let upload = (0..<(5 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 12)) }
        let uploadReply = try await RawHTTPClient.with(port: port) { connection in
            try await connection.send("POST /up HTTP/1.1\r\nHost: \(hostname)\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in stride(from: 0, to: upload.count, by: 256 << 10) {
                let piece = Array(upload[start..<min(start + (256 << 10), upload.count)])
                try await connection.send(String(piece.count, radix: 16) + "\r\n")
                try await connection.send(piece + [13, 10])
            }
            try await connection.send("0\r\n\r\n")
            return try await connection.readResponse()
        }
        let uploaded = ExposureServer.json(uploadReply)
        #expect(uploaded["length"] as? Int == upload.count)
        #expect(uploaded["sha256"] as? String == SHA256.hash(data: upload).map { String(format: "%02x", $0) }.joined())

        // A WebSocket upgrade passes through and echoes frames both ways.
        let echoed = try await RawHTTPClient.with(port: port) { connection in
            try await connection.send(
                "GET /ws HTTP/1.1\r\nHost: \(hostname)\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            let upgraded = try await connection.readResponse()
            #expect(upgraded.status == 101)
            #expect(upgraded.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            var texts: [String] = []
            for message in ["hello", String(repeating: "x", count: 300)] {
                let payload = Array(message.utf8)
                let mask: [UInt8] = [1, 2, 3, 4]
                let length: [UInt8] = payload.count < 126 ? [0x80 | UInt8(payload.count)] : [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 255)]
                try await connection.send([0x81] + length + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
                let head = try await connection.readBytes(2)
                var size = Int(head[1] & 127)
                if size == 126 {
                    let extended = try await connection.readBytes(2)
                    size = Int(extended[0]) << 8 | Int(extended[1])
                }
                texts.append(String(decoding: try await connection.readBytes(size), as: UTF8.self))
            }
            return texts
        }
        #expect(echoed == ["hello", String(repeating: "x", count: 300)])

        // Traffic is the sandbox's activity and the exposure's last access.
        let listed = try await client.get("/sandboxes/\(id)/exposures")
        #expect(listed.array.count == 1)
        #expect(listed.array.first?["lastAccessedAt"] is String)

        // Revoked: the gateway stops answering at once; the list keeps it.
        #expect(try await client.delete("/sandboxes/\(id)/exposures/\(expID)").status == 204)
        #expect(try await client.get("/sandboxes/\(id)/exposures/\(expID)").object["status"] as? String == "revoked")
        #expect(try await RawHTTPClient.request(port: port, host: hostname, "/").status == 404)
        #expect(try await client.get("/sandboxes/\(id)/exposures").array.first?["status"] as? String == "revoked")

        // Killed sandbox: its live exposures turn sandbox_stopped and answer 502.
        let second = try await client.post("/sandboxes/\(id)/exposures", ["port": 8000]).object
        let secondHost = second["hostname"] as? String ?? ""
        #expect(second["status"] as? String == "ready")
        #expect(secondHost.range(of: "^[a-z]+-[a-z]+-[0-9a-f]{8}\\.localhost$", options: .regularExpression) != nil, "\(secondHost)")
        #expect(try await RawHTTPClient.request(port: port, host: secondHost, "/").status == 200)
        #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        #expect(try await RawHTTPClient.request(port: port, host: secondHost, "/").status == 502)
        let stopped = try await client.get("/sandboxes/\(id)/exposures/\(second["id"] as? String ?? "")").object
        #expect(stopped["status"] as? String == "sandbox_stopped")
        #expect(stopped["sandboxStoppedAt"] is String)
    }

    @Test func privateExposuresSecureModeAndHostMasking() async throws {
        let (server, client) = try await ExposureServer.client("secure")
        let port = server.previewPort
        let created = try await CreateGate.shared.run {
            try await client.request(
                "POST", "/sandboxes",
                json: ["template": "playground", "timeout": 1800, "secure": true, "maskRequestHost": "app.internal:${PORT}"], timeout: 600)
        }
        #expect(created.status == 201, "\(created.text)")
        let id = created.object["sandboxID"] as? String ?? ""
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let token = created.object["trafficToken"] as? String ?? ""
        #expect(token.range(of: "^[a-f0-9]{64}$", options: .regularExpression) != nil)
        // Normal API calls keep working on a secure sandbox.
        try await ExposureServer.startGuestServer(client, id)
        let secure = ["e2b-traffic-access-token": token]

        // Secure mode: the convention host refuses requests without the header.
        let convention = "\(id)-8000.localhost"
        var served: RawHTTPClient.Response?
        for _ in 0..<100 {
            // Until the guest's server listens; a request that got no answer is tried again.
            served = try? await RawHTTPClient.request(port: port, host: convention, "/s", headers: secure, timeout: .seconds(20))
            if served?.status == 200 { break }
            try await Task.sleep(for: .milliseconds(300))
        }
        guard let served, served.status == 200 else {
            Issue.record("the secure sandbox's server never answered through the gateway: \(String(describing: served?.status))")
            return
        }
        let seen = ExposureServer.json(served)
        #expect(seen["host"] as? String == "app.internal:8000")
        #expect(seen["token"] is NSNull, "the traffic token must not reach the sandbox")
        #expect(try await RawHTTPClient.request(port: port, host: convention, "/s").status == 403)
        #expect(try await RawHTTPClient.request(port: port, host: convention, "/s", headers: ["e2b-traffic-access-token": String(repeating: "0", count: 64)]).status == 403)

        // Private exposure: without its token 401; accessUrl sets a cookie that keeps the session.
        let exposure = try await client.post(
            "/sandboxes/\(id)/exposures", ["port": 8000, "visibility": "private", "openPath": "/app?x=1", "preserveHost": false]).object
        let hostname = exposure["hostname"] as? String ?? ""
        let accessURL = exposure["accessUrl"] as? String ?? ""
        #expect(exposure["url"] as? String == "http://\(hostname):\(port)/app?x=1")
        #expect(accessURL.hasPrefix("http://\(hostname):\(port)/app?x=1&omnirun_token="))
        let accessToken = String(accessURL.split(separator: "=").last ?? "")
        #expect(try await RawHTTPClient.request(port: port, host: hostname, "/app", headers: secure).status == 401)
        #expect(try await RawHTTPClient.request(port: port, host: hostname, "/app?omnirun_token=wrong", headers: secure).status == 401)
        let redirect = try await RawHTTPClient.request(port: port, host: hostname, "/app?x=1&omnirun_token=\(accessToken)", headers: secure)
        #expect(redirect.status == 302)
        #expect(redirect.header("location") == "/app?x=1")
        let cookie = (redirect.header("set-cookie") ?? "").split(separator: ";").first.map(String.init) ?? ""
        #expect(cookie == "omnirun_preview=\(accessToken)")
        let withCookie = try await RawHTTPClient.request(
            port: port, host: hostname, "/app?x=1", headers: secure.merging(["Cookie": "theme=dark; \(cookie)"]) { $1 })
        #expect(withCookie.status == 200)
        let inside = ExposureServer.json(withCookie)
        #expect(inside["cookie"] as? String == "theme=dark")
        // maskRequestHost decides the Host over preserveHost.
        #expect(inside["host"] as? String == "app.internal:8000")
        #expect(try await RawHTTPClient.request(port: port, host: hostname, "/app", headers: ["Cookie": cookie]).status == 403)
    }

    @Test func expiryRefreshAndBadInput() async throws {
        let (server, client) = try await ExposureServer.client("ttl")
        let port = server.previewPort
        let id = try await createSandbox(client, ["template": "playground", "timeout": 1800])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        try await ExposureServer.startGuestServer(client, id)
        let exposure = try await client.post("/sandboxes/\(id)/exposures", ["port": 8000, "preserveHost": false]).object
        let expID = exposure["id"] as? String ?? ""
        let hostname = exposure["hostname"] as? String ?? ""
        _ = try await ExposureServer.waitFor("ready", client, "/sandboxes/\(id)/exposures/\(expID)")
        let before = try await RawHTTPClient.request(port: port, host: hostname, "/")
        #expect(before.status == 200)
        #expect(ExposureServer.json(before)["host"] as? String == "localhost:8000")
        // A refresh with a short TTL: it expires two seconds later.
        #expect(try await client.post("/sandboxes/\(id)/exposures/\(expID)/refresh", ["requestedTtlSeconds": 2]).status == 200)
        _ = try await ExposureServer.waitFor("expired", client, "/sandboxes/\(id)/exposures/\(expID)", seconds: 15)
        #expect(try await RawHTTPClient.request(port: port, host: hostname, "/").status == 410)
        let refreshed = try await client.post("/sandboxes/\(id)/exposures/\(expID)/refresh", ["requestedTtlSeconds": 600])
        #expect(refreshed.status == 200)
        #expect(refreshed.object["status"] as? String == "ready")
        #expect(try await RawHTTPClient.request(port: port, host: hostname, "/").status == 200)

        for body: [String: Any] in [
            [:], ["port": 0], ["port": 70000], ["port": 80, "visibility": "secret"], ["port": 80, "requestedTtlSeconds": 0],
            ["port": 80, "slug": "Bad_Slug"], ["port": 80, "openPath": "no-slash"], ["port": "80"],
        ] {
            let reply = try await client.post("/sandboxes/\(id)/exposures", body)
            #expect(reply.status == 400, "\(body) → \(reply.status) \(reply.text)")
            #expect(reply.object["error"] as? String == "invalid_argument")
        }
        #expect(try await client.get("/sandboxes/\(id)/exposures/exp_nope").status == 404)
        #expect(try await client.post("/sandboxes/\(id)/exposures/exp_nope/refresh").status == 404)
        #expect(try await client.delete("/sandboxes/\(id)/exposures/exp_nope").status == 404)
        let (_, stranger) = try await ExposureServer.client("stranger")
        #expect(try await stranger.get("/sandboxes/\(id)/exposures").status == 404)
        #expect(try await stranger.get("/sandboxes/\(id)/exposures/\(expID)").status == 404)
        #expect(try await stranger.post("/sandboxes/\(id)/exposures", ["port": 8000]).status == 404)
        #expect(try await client.post("/sandboxes/\(id)/exposures/\(expID)/refresh", ["requestedTtlSeconds": -1]).status == 400)
        _ = try await client.delete("/sandboxes/\(id)/exposures/\(expID)")
        #expect(try await client.post("/sandboxes/\(id)/exposures/\(expID)/refresh").status == 409)
    }
}
