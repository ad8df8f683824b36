import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The REST API as `omni` uses it: JSON in and out, `X-API-Key`, errors mapped to
/// `CLIError`s with meaningful exit codes, server-sent events read as they arrive.
struct APIClient: Sendable {
    let baseURL: String
    let apiKey: String

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
        let payload = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? body
        let request = makeRequest(method, path, query: query, body: payload, contentType: contentType)
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeout))
            let buffer = try await response.body.collect(upTo: limit)
            return Reply(status: Int(response.status.code), data: Data(buffer.readableBytesView), headers: response.headers)
        } catch let error as HTTPClientError {
            throw CLIError("cannot reach \(baseURL): \(error)")
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("cannot reach \(baseURL): \(error)")
        }
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
            response = try await HTTPClient.shared.execute(request, timeout: .hours(24))
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
