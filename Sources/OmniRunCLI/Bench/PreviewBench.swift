import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The preview gateway's cost: a small answer of an HTTP server in the sandbox fetched
/// through an exposure (new connection each time, and on one kept-alive connection),
/// beside the same request made inside the guest.
extension APIBench {
    struct PreviewSamples {
        var gatewayFresh: [Double] = []
        var gatewayKeptAlive: [Double] = []
        var inGuestFresh: [Double] = []
        var inGuestKeptAlive: [Double] = []
    }

    static let previewServer = """
        import functools, http.server
        class Handler(http.server.SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *args):
                pass
        http.server.ThreadingHTTPServer(("127.0.0.1", 8000), functools.partial(Handler, directory="/tmp/www")).serve_forever()
        """

    /// Timed inside the guest with the same server: new connections, then one kept alive.
    static func inGuestClient(_ count: Int) -> String {
        """
        import http.client, json, time
        fresh, kept = [], []
        for _ in range(\(count)):
            t = time.perf_counter()
            c = http.client.HTTPConnection("127.0.0.1", 8000)
            c.request("GET", "/ok.txt")
            assert c.getresponse().read() == b"ok"
            c.close()
            fresh.append((time.perf_counter() - t) * 1000)
        c = http.client.HTTPConnection("127.0.0.1", 8000)
        for _ in range(\(count)):
            t = time.perf_counter()
            c.request("GET", "/ok.txt")
            assert c.getresponse().read() == b"ok"
            kept.append((time.perf_counter() - t) * 1000)
        print(json.dumps({"fresh": fresh, "kept": kept}))
        """
    }

    func previewRoundTrips(_ count: Int) async throws -> PreviewSamples {
        let (_, created) = try await request("POST", "/sandboxes", json: ["template": template, "timeout": 600])
        guard let id = created["sandboxID"] as? String else { throw BenchError("create failed: \(created)") }
        defer { Task { [self] in _ = try? await request("DELETE", "/sandboxes/\(id)") } }
        _ = try await request("POST", "/sandboxes/\(id)/files", json: ["path": "/tmp/www/ok.txt", "content": "ok"])
        _ = try await request("POST", "/sandboxes/\(id)/files", json: ["path": "/tmp/preview.py", "content": Self.previewServer])
        _ = try await request("POST", "/sandboxes/\(id)/commands", json: ["command": "python3 /tmp/preview.py", "background": true])
        let (status, exposure) = try await request("POST", "/sandboxes/\(id)/exposures", json: ["port": 8000])
        guard status == 201, let expID = exposure["id"] as? String, let host = exposure["hostname"] as? String else {
            throw BenchError("exposure create answered \(status): \(exposure)")
        }
        var ready = false
        for _ in 0..<200 where !ready {
            ready = try await request("GET", "/sandboxes/\(id)/exposures/\(expID)").1["status"] as? String == "ready"
            if !ready { try await Task.sleep(for: .milliseconds(200)) }
        }
        guard ready else { throw BenchError("the exposure did not become ready") }
        var samples = PreviewSamples()
        let requestText = "GET /ok.txt HTTP/1.1\r\nHost: \(host)\r\n\r\n"
        // Warm-up (first use translates the paths under emulation).
        for _ in 0..<3 { _ = try LoopbackHTTP.fresh(port: previewPort, request: requestText) }
        for _ in 0..<count {
            let started = ContinuousClock.now
            guard try LoopbackHTTP.fresh(port: previewPort, request: requestText).hasSuffix("\r\n\r\nok") else {
                throw BenchError("unexpected preview answer")
            }
            samples.gatewayFresh.append((ContinuousClock.now - started).milliseconds)
        }
        let connection = try LoopbackHTTP(port: previewPort)
        defer { connection.close() }
        for _ in 0..<count {
            let started = ContinuousClock.now
            guard try connection.exchange(requestText).hasSuffix("\r\n\r\nok") else { throw BenchError("unexpected preview answer") }
            samples.gatewayKeptAlive.append((ContinuousClock.now - started).milliseconds)
        }
        _ = try await request("POST", "/sandboxes/\(id)/files", json: ["path": "/tmp/client.py", "content": Self.inGuestClient(count)])
        let (_, run) = try await request("POST", "/sandboxes/\(id)/commands", json: ["command": "python3 /tmp/client.py", "timeout": 600])
        guard let output = (run["stdout"] as? String)?.data(using: .utf8),
            let times = try JSONSerialization.jsonObject(with: output) as? [String: [Double]]
        else { throw BenchError("the in-guest client failed: \(run)") }
        samples.inGuestFresh = times["fresh"] ?? []
        samples.inGuestKeptAlive = times["kept"] ?? []
        _ = try await request("DELETE", "/sandboxes/\(id)")
        return samples
    }
}

/// A blocking HTTP/1.1 client on loopback for the preview measurement: no DNS (the Host is
/// sent as is), answers read by their Content-Length.
final class LoopbackHTTP {
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket failed") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        // A gateway or guest that stops answering fails the run instead of hanging it.
        var limit = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            throw BenchError("cannot connect to 127.0.0.1:\(port)")
        }
    }

    static func fresh(port: Int, request: String) throws -> String {
        let connection = try LoopbackHTTP(port: port)
        defer { connection.close() }
        return try connection.exchange(request)
    }

    /// Sends a request and reads one answer (head and Content-Length body).
    func exchange(_ request: String) throws -> String {
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else {
            throw BenchError("send failed")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw BenchError("connection closed") }
            received += buffer[..<count]
            let text = String(decoding: received, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { continue }
            let head = text[..<end.lowerBound].lowercased()
            let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            if text.utf8.count - text.utf8.distance(from: text.startIndex, to: end.upperBound) >= length { return text }
        }
    }

    func close() {
        Glibc.close(fd)
    }
}
