import Foundation
import NIOConcurrencyHelpers
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small HTTP client for tests that talk to a real `omnirun serve` over loopback.
public struct HTTPTestClient: Sendable {
    public let baseURL: String
    public var apiKey: String?

    public init(baseURL: String, apiKey: String?) {
        self.baseURL = baseURL
        self.apiKey = apiKey
    }

    public struct Reply: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: Data

        public var text: String { String(decoding: body, as: UTF8.self) }

        public func json() throws -> Any {
            try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
        }

        public var object: [String: Any] { ((try? json()) as? [String: Any]) ?? [:] }
        public var array: [[String: Any]] { ((try? json()) as? [[String: Any]]) ?? [] }
        public func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }
    }

    public func request(
        _ method: String, _ path: String, json: Any? = nil, body: Data? = nil, contentType: String? = nil,
        headers: [String: String] = [:], timeout: TimeInterval = 120
    ) async throws -> Reply {
        var request = URLRequest(url: URL(string: path.hasPrefix("http") ? path : baseURL + path)!)
        request.httpMethod = method
        request.timeoutInterval = timeout
        if let apiKey { request.setValue(apiKey, forHTTPHeaderField: "X-API-Key") }
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json, options: [.fragmentsAllowed])
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        } else if let body {
            request.httpBody = body
            if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (key, value) in http.allHeaderFields { fields["\(key)"] = "\(value)" }
        return Reply(status: http.statusCode, headers: fields, body: data)
    }

    /// A `multipart/form-data` POST: text fields and files (name, file name, bytes).
    public func multipart(
        _ path: String, fields: [(String, String)], files: [(name: String, filename: String, data: Data)] = [],
        timeout: TimeInterval = 120
    ) async throws -> Reply {
        let boundary = "omnirun-test-\(UUID().uuidString)"
        var body = Data()
        for (name, value) in fields {
            body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        for file in files {
            body += Data(
                "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(file.name)\"; filename=\"\(file.filename)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            body += file.data
            body += Data("\r\n".utf8)
        }
        body += Data("--\(boundary)--\r\n".utf8)
        return try await request(
            "POST", path, body: body, contentType: "multipart/form-data; boundary=\(boundary)", timeout: timeout)
    }

    public func get(_ path: String) async throws -> Reply { try await request("GET", path) }
    public func post(_ path: String, _ json: Any? = nil) async throws -> Reply { try await request("POST", path, json: json ?? [:]) }
    public func delete(_ path: String) async throws -> Reply { try await request("DELETE", path) }

    /// Reads a server-sent event stream line by line until `until` returns true or the
    /// stream ends. Returns the parsed `data:` events.
    public func events(
        _ path: String, method: String = "GET", json: Any? = nil, timeout: TimeInterval = 60,
        until: @escaping @Sendable ([[String: Any]]) -> Bool = { _ in false }
    ) async throws -> [[String: Any]] {
        let url = URL(string: baseURL + path)!
        let host = url.host ?? "127.0.0.1"
        let port = url.port ?? 80
        let target = url.path + (url.query.map { "?" + $0 } ?? "")
        let socket = try LineSocket(host: host, port: port, timeout: timeout)
        defer { socket.close() }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(host)\r\nAccept: text/event-stream\r\nConnection: close\r\n"
        if let apiKey { head += "X-API-Key: \(apiKey)\r\n" }
        var body = ""
        if let json {
            body = String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)
            head += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
        }
        try socket.write(head + "\r\n" + body)
        guard let status = try socket.readLine(), status.contains(" 200 ") else {
            throw HTTPTestError("stream did not answer 200")
        }
        while let line = try socket.readLine(), !line.isEmpty {}
        var events: [[String: Any]] = []
        while let line = try socket.readLine() {
            // Chunk-size lines and blank lines are framing; events are `data: ` lines.
            guard line.hasPrefix("data: ") else { continue }
            let payload = Data(line.dropFirst(6).utf8)
            if let object = try? JSONSerialization.jsonObject(with: payload) as? [String: Any] {
                events.append(object)
                if until(events) { break }
            }
        }
        return events
    }
}

public struct HTTPTestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A blocking TCP socket reading CRLF/LF lines (tests only).
final class LineSocket: @unchecked Sendable {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(host: String, port: Int, timeout: TimeInterval) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr)
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw HTTPTestError("connect failed: \(errno)") }
    }

    func write(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw HTTPTestError("write failed") }
            offset += n
        }
    }

    func readLine() throws -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 10) {
                var line = Array(buffer[..<newline])
                buffer.removeFirst(newline + 1)
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 8192)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return buffer.isEmpty ? nil : { defer { buffer = [] }; return String(decoding: buffer, as: UTF8.self) }() }
            buffer += chunk[..<n]
        }
    }

    func close() { Glibc.close(fd) }
}

#if canImport(Glibc)
import Glibc
#endif
