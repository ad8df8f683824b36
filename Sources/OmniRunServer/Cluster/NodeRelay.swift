import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import OmniRunControl
import OmniRunError
import OmniRunStore

/// Forwards a request to the node that owns its sandbox (or that a create is placed on)
/// and streams the answer back: bodies both ways go through in pieces with the HTTP
/// client's back-pressure, so SSE, PTY reads, uploads and downloads keep bounded memory.
/// The owner checks the caller's key, signed URL or e2ee envelope itself (the store is
/// shared); the relay header says the request was relayed once, so two nodes that
/// disagree about an owner answer 503 instead of passing it back and forth.
final class NodeRelay: Sendable {
    static let header = HTTPField.Name("x-omnirun-relayed-by")!
    static let signature = HTTPField.Name(ClusterAuth.header)!
    let client: HTTPClient
    let nodes: NodeRepository
    let auth: ClusterAuth
    var nodeID: String { auth.node }
    let logger: Logger

    init(nodes: NodeRepository, auth: ClusterAuth, logger: Logger) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5), read: nil)
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 512)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.nodes = nodes
        self.auth = auth
        self.logger = logger
    }

    func shutdown() async {
        try? await client.shutdown()
    }

    static func wasRelayed(_ request: Request) -> Bool { request.headers[header] != nil }

    /// Where `node` answers, if its lease is current.
    func address(of node: String) async throws -> String {
        guard let record = try await nodes.find(id: node) else {
            throw OmniRunError(.unavailable, "the sandbox's node \(node) is not part of this cluster")
        }
        guard record.isUp(at: nowMillis()) else {
            throw OmniRunError(.unavailable, "the sandbox's node \(node) is down (its lease ran out); try again later")
        }
        guard let url = record.advertiseURL, !url.isEmpty else {
            throw OmniRunError(.unavailable, "the sandbox's node \(node) has no advertise URL (--advertise-url) to reach it by")
        }
        return url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    /// Sends `request` (with `body` instead of the request's own, when given) to `node`.
    func forward(_ request: Request, to node: String, body: ByteBuffer? = nil) async throws -> Response {
        guard !Self.wasRelayed(request) else {
            throw OmniRunError(
                .unavailable, "this request was relayed here by \(request.headers[Self.header] ?? "another node"), but node \(node) owns it")
        }
        let base = try await address(of: node)
        var outbound = HTTPClientRequest(url: base + request.uri.description)
        outbound.method = HTTPMethod(rawValue: request.method.rawValue)
        var length: Int?
        for field in request.headers where !Self.hopByHop.contains(field.name.canonicalName) && field.name != Self.signature {
            if field.name == .contentLength {
                length = Int(field.value).flatMap { $0 >= 0 ? $0 : nil }
                continue
            }
            outbound.headers.add(name: field.name.rawName, value: field.value)
        }
        outbound.headers.add(name: Self.header.rawName, value: nodeID)
        outbound.headers.add(name: ClusterAuth.header, value: auth.sign(method: request.method.rawValue, target: request.uri.description))
        if let body {
            outbound.body = .bytes(body)
        } else if let length {
            outbound.body = .stream(request.body, length: .known(Int64(length)))
        } else if request.method != .get, request.method != .head, request.method != .delete {
            outbound.body = .stream(request.body, length: .unknown)
        }
        let answer: HTTPClientResponse
        do {
            // No overall deadline: a streamed command or a PTY read lasts as long as it lasts
            // (the owner's own timeouts end them); connecting is bounded.
            answer = try await client.execute(outbound, deadline: .distantFuture, logger: logger)
        } catch {
            throw OmniRunError(.unavailable, "node \(node) did not answer: \(error)")
        }
        var headers = HTTPFields()
        for (name, value) in answer.headers {
            guard let field = HTTPField.Name(name), !Self.hopByHop.contains(field.canonicalName) else { continue }
            headers.append(HTTPField(name: field, value: value))
        }
        return Response(
            status: HTTPResponse.Status(code: Int(clamping: answer.status.code)), headers: headers,
            body: ResponseBody(asyncSequence: answer.body))
    }

    /// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1).
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
        "proxy-authenticate", "proxy-authorization", "expect",
    ]
}
