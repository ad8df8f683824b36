import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import OmniRunError

/// Calls upstreams over HTTP(S). An upstream that cannot be reached or fails answers
/// `.upstreamFailed` (502); one that does not answer in time `.upstreamTimeout` (504).
public final class UpstreamClient: Sendable {
    let http: HTTPClient
    let environment: [String: String]
    let defaultTimeout: Double
    let logger: Logger
    /// Largest non-streamed answer or error body read from an upstream.
    public static let maxBodyBytes = 32 << 20

    public init(defaultTimeoutSeconds: Double, environment: [String: String], logger: Logger) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .milliseconds(Int64(defaultTimeoutSeconds * 1000)))
        configuration.decompression = .disabled
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.environment = environment
        self.defaultTimeout = defaultTimeoutSeconds
        self.logger = logger
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    /// An upstream's answer: its status and headers, and its body as it arrives.
    public struct Answer: Sendable {
        public var status: Int
        public var contentType: String?
        public var body: HTTPClientResponse.Body
    }

    func timeout(_ upstream: Upstream) -> TimeAmount {
        .milliseconds(Int64((upstream.timeoutSeconds ?? defaultTimeout) * 1000))
    }

    func request(
        _ upstream: Upstream, path: String, method: HTTPMethod, body: ByteBuffer?, stream: Bool, wire: LLMProtocol = .chatCompletions,
        headers: [(String, String)] = []
    ) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: upstream.root + path)
        request.method = method
        if let key = upstream.resolvedKey(environment: environment) {
            if wire == .messages {
                request.headers.add(name: "x-api-key", value: key)
            } else {
                request.headers.add(name: "Authorization", value: "Bearer \(key)")
            }
        }
        request.headers.add(name: "Accept", value: stream ? "text/event-stream" : "application/json")
        request.headers.add(name: "User-Agent", value: "omnirun-llm-proxy")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        return request
    }

    /// Sends a request of `wire` (`countTokens`: Anthropic's `/messages/count_tokens`) with
    /// the client's protocol headers; returns once the upstream's head has arrived.
    public func send(
        _ upstream: Upstream, wire: LLMProtocol, body: ByteBuffer, stream: Bool, countTokens: Bool = false,
        headers: [(String, String)] = []
    ) async throws -> Answer {
        let path = wire.path + (countTokens ? "/count_tokens" : "")
        let request = request(upstream, path: path, method: .POST, body: body, stream: stream, wire: wire, headers: headers)
        do {
            let response = try await http.execute(request, timeout: timeout(upstream), logger: logger)
            return Answer(
                status: Int(response.status.code), contentType: response.headers.first(name: "content-type"),
                body: response.body)
        } catch {
            throw Self.failure(error, upstream: upstream)
        }
    }

    /// The model ids the upstream lists (`GET /models`).
    public func models(_ upstream: Upstream) async throws -> [String] {
        // An upstream that speaks only Anthropic Messages lists its models the Anthropic way.
        let anthropic = upstream.spokenProtocols == [.messages]
        let request = request(
            upstream, path: "/models", method: .GET, body: nil, stream: false, wire: anthropic ? .messages : .chatCompletions,
            headers: anthropic ? [("anthropic-version", MessagesHeaders.defaultVersion)] : [])
        do {
            let response = try await http.execute(request, timeout: .seconds(15), logger: logger)
            let bytes = try await response.body.collect(upTo: Self.maxBodyBytes)
            guard response.status == .ok else {
                throw OmniRunError(.upstreamFailed, "upstream \(upstream.name) answered \(response.status.code) to GET /models")
            }
            let object = try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any]
            return (object?["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        } catch let error as OmniRunError {
            throw error
        } catch {
            throw Self.failure(error, upstream: upstream)
        }
    }

    /// Maps a transport error to 502 or 504.
    public static func failure(_ error: any Error, upstream: Upstream) -> OmniRunError {
        if let error = error as? OmniRunError { return error }
        if let error = error as? HTTPClientError {
            if error == .readTimeout || error == .deadlineExceeded || error == .connectTimeout {
                return OmniRunError(.upstreamTimeout, "upstream \(upstream.name) did not answer in time (\(error))")
            }
        }
        if error is CancellationError { return OmniRunError(.unavailable, "the request was cancelled") }
        return OmniRunError(.upstreamFailed, "upstream \(upstream.name) could not be reached: \(error)")
    }
}
