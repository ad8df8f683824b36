import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OmniRunE2EE

/// The one HTTP client of the process. Unlike `HTTPClient.shared` it has no read timeout (its
/// 90 s cut off a create that builds a template's snapshot, a long foreground command and a
/// quiet output stream); each request's deadline limits it instead (`--request-timeout`, or
/// the command's own). It lives as long as the process, so it is never shut down.
let httpClient = HTTPClient(
    eventLoopGroup: HTTPClient.defaultEventLoopGroup,
    configuration: .init(redirectConfiguration: .follow(max: 5, allowCycles: false), timeout: .init(connect: .seconds(30), read: nil)))

/// The REST API as `omni` uses it: JSON in and out, `X-API-Key`, errors mapped to
/// `CLIError`s with meaningful exit codes, server-sent events read as they arrive.
/// Requests to an e2ee sandbox created here (`E2EEKeys`) are sealed and its answers opened.
struct APIClient: Sendable {
    let baseURL: String
    let apiKey: String
    /// `--request-timeout` (milliseconds): the limit on each request that is not a stream.
    var requestTimeoutMilliseconds: Int64? = nil

    struct Reply {
        var status: Int
        var data: Data
        var headers: HTTPHeaders
        var json: Any? { try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) }
        var object: [String: Any] { json as? [String: Any] ?? [:] }
        var array: [[String: Any]] { json as? [[String: Any]] ?? [] }
    }

    func url(_ path: String, query: [(String, String)] = []) -> String {
        var components = URLComponents(string: baseURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + path)!
        if !query.isEmpty { components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        // '+' and ':' in values survive; encode '+' so it is not read as a space.
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        return components.string!
    }

    private func makeRequest(_ method: HTTPMethod, _ path: String, query: [(String, String)], body: Data?, contentType: String?,
                         accept: String? = nil) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url(path, query: query))
        request.method = method
        if !apiKey.isEmpty { request.headers.add(name: "X-API-Key", value: apiKey) }
        request.headers.add(name: "User-Agent", value: "omni/0.1")
        if let accept { request.headers.add(name: "Accept", value: accept) }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType ?? "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        return request
    }

    /// One request; the body is read whole (up to `limit` bytes). Non-2xx answers are returned, not thrown.
    func send(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], json: Any? = nil, body: Data? = nil,
              contentType: String? = nil, timeout: Int64 = 600, limit: Int = 1 << 30) async throws -> Reply {
        var payload = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? body
        var contentType = contentType
        let channel = try e2eeChannel(path)
        let target = "\(method.rawValue) \(Self.target(url(path, query: query)))"
        if let channel, method == .POST {
            // Every POST to an e2ee sandbox carries an envelope (an empty body seals `{}`).
            payload = try channel.sealRequest(payload ?? Data("{}".utf8), target: target)
            contentType = "application/json"
        }
        var request = makeRequest(method, path, query: query, body: payload, contentType: contentType)
        // Holding the key, ask for sealed answers to GETs too (a GET shows the server nothing else).
        if channel != nil { request.headers.replaceOrAdd(name: "X-OmniRun-E2EE", value: "seal") }
        let deadline: TimeAmount = requestTimeoutMilliseconds.map { .milliseconds($0) } ?? .seconds(timeout)
        var reply: Reply
        do {
            let response = try await httpClient.execute(request, timeout: deadline)
            let buffer = try await response.body.collect(upTo: limit)
            reply = Reply(status: Int(response.status.code), data: Data(buffer.readableBytesView), headers: response.headers)
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            let source = requestTimeoutMilliseconds == nil ? "" : " (--request-timeout)"
            throw CLIError("\(baseURL) gave no answer within \(Self.describe(deadline))\(source)")
        } catch let error as HTTPClientError {
            throw CLIError("cannot reach \(baseURL): \(error)")
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("cannot reach \(baseURL): \(error)")
        }
        // A 2xx JSON answer about an e2ee sandbox must come sealed and bound to this request.
        if let channel, method == .POST || method == .GET, (200..<300).contains(reply.status), reply.status != 204,
           reply.headers.first(name: "content-type")?.hasPrefix("application/json") == true {
            reply.data = try channel.openResponse(reply.data, request: target)
        }
        return reply
    }

    /// The channel of the e2ee sandbox `path` addresses (`/sandboxes/{id}/...`), if this
    /// machine created it; nil for other routes and for the routes that stay plaintext
    /// (multipart uploads; DELETEs, downloads and streams are never sealed by the server).
    func e2eeChannel(_ path: String) throws -> E2EEChannel? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 3, parts[0] == "sandboxes" else { return nil }
        if parts.count == 4, parts[2] == "files", parts[3] == "upload" { return nil }
        return try E2EEKeys.channel(sandbox: String(parts[1]))
    }

    /// The request target (path and query) of a full URL, as the server sees it.
    static func target(_ url: String) -> String {
        guard let components = URLComponents(string: url) else { return url }
        let query = components.percentEncodedQuery.map { "?" + $0 } ?? ""
        return (components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath) + query
    }

    static func describe(_ amount: TimeAmount) -> String {
        let milliseconds = amount.nanoseconds / 1_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }

    /// One request that must succeed (2xx); otherwise the server's message and a matching exit code.
    @discardableResult
    func call(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], json: Any? = nil, body: Data? = nil,
              contentType: String? = nil, timeout: Int64 = 600) async throws -> Reply {
        let reply = try await send(method, path, query: query, json: json, body: body, contentType: contentType, timeout: timeout)
        guard (200..<300).contains(reply.status) else { throw Self.error(reply.status, reply.data) }
        return reply
    }

    static func error(_ status: Int, _ data: Data) -> CLIError {
        let text = String(decoding: data, as: UTF8.self)
        var message = text.isEmpty ? "request failed" : text
        if let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            message = (object["message"] as? String) ?? (object["error"] as? String) ?? text
        }
        return CLIError("\(message) (HTTP \(status))", exitCode: ExitStatus.forHTTP(status))
    }

    /// Reads a server-sent event stream; `onEvent` gets each `data:` JSON payload and returns
    /// true to stop. Lines that are not `data: <json>` are skipped.
    func events(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], json: Any? = nil,
                onEvent: (Any) throws -> Bool) async throws {
        let payload = try json.map { try JSONSerialization.data(withJSONObject: $0) }
        let request = makeRequest(method, path, query: query, body: payload, contentType: nil, accept: "text/event-stream")
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: .hours(24))
        } catch {
            throw CLIError("cannot reach \(baseURL): \(error)")
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            let buffer = try await response.body.collect(upTo: 1 << 20)
            throw Self.error(Int(response.status.code), Data(buffer.readableBytesView))
        }
        var pending = [UInt8]()
        for try await chunk in response.body {
            pending += chunk.readableBytesView
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                var line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                if line.hasSuffix("\r") { line.removeLast() }
                guard line.hasPrefix("data: "),
                      let value = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8), options: [.fragmentsAllowed])
                else { continue }
                if try onEvent(value) { return }
            }
        }
    }
}
