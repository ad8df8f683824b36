import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunE2EE
import OmniRunError

/// Wire protocol §12 on the routes of an e2ee sandbox (`/sandboxes/{id}/...`):
/// - a POST must carry exactly `{"_encrypted": envelope}`; it is opened (once: a seen nonce
///   is a replay) and the handler gets the plaintext JSON. A plaintext or missing body is
///   refused, so a downgrade cannot pass silently; only the routes the SDK calls without a
///   body (pause, resume, a context's restart) may have none.
/// - an envelope's `aad`, when present, must be this request's method and target
///   (`POST /sandboxes/{id}/commands`, the query included): it cannot be sent to another
///   route. The public SDK sends none; its envelopes are held to their nonce (see
///   `E2EESessions`: remembered across restarts, a retry allowed only on the same route).
/// - a 2xx JSON answer to a sealed POST is sealed as `{"_encrypted": envelope}` with `aad`
///   `response <METHOD> <target>`, so an answer is bound to its request and can never pass
///   as a request; errors stay plaintext (the SDK reads them before it decrypts).
/// - a GET carries nothing that shows whether its client holds the key: its answer is
///   sealed when the request asks with `X-OmniRun-E2EE: seal` (the OmniRun SDKs and `omni`
///   do once they hold a key), else plaintext. So a client without the key
///   (`Sandbox.connect()`, a new CLI process) reads answers it can parse and cannot act:
///   its POSTs are refused with a 400 that says why (docs/security.md, "e2ee").
/// - multipart uploads (`files/upload`) and SSE POSTs (`contexts/{ctx}/stream-execute`)
///   stay plaintext both ways, as the SDK sends them; so do DELETEs, downloads and streams.
/// Runs after `OwnershipMiddleware`, so the sandbox is the caller's.
struct E2EEMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let sessions: E2EESessions
    /// The largest envelope read: base64 of the largest JSON body, plus the envelope.
    let maxEnvelope: Int

    init(sessions: E2EESessions, maxJSONBody: Int) {
        self.sessions = sessions
        self.maxEnvelope = maxJSONBody / 3 * 4 + 4096
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let parts = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 3, parts[0] == "sandboxes", request.method == .post || request.method == .get else {
            return try await next(request, context)
        }
        let sandboxID = String(parts[1])
        guard let channel = await sessions.channel(sandboxID) else {
            if await sessions.isLocked(sandboxID) {
                throw OmniRunError(
                    .unavailable, "this e2ee sandbox's key does not open with the server's master key; it cannot be reached")
            }
            return try await next(request, context)
        }
        if Self.staysPlaintext(parts.dropFirst(2).map(String.init)) { return try await next(request, context) }
        let route = Self.route(request)
        guard request.method == .post else {
            let response = try await next(request, context)
            return Self.wantsSealedAnswer(request) ? try await Self.seal(response, channel: channel, route: route) : response
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: maxEnvelope)
        } catch {
            throw OmniRunError(.payloadTooLarge, "the encrypted request body is larger than \(maxEnvelope) bytes")
        }
        var nonce: [UInt8]? = nil
        if body.readableBytes == 0, !Self.bodyless(parts.dropFirst(2).map(String.init)) {
            throw OmniRunError(.invalidArgument, Self.plaintextRefused(sandboxID))
        }
        if body.readableBytes > 0 {
            let envelope = try Self.envelope(Data(buffer: body), sandboxID: sandboxID)
            if let aad = envelope.aad, !aad.isEmpty, aad != route {
                throw OmniRunError(
                    .invalidArgument,
                    "this e2ee envelope is bound to another request: its aad is '\(aad.prefix(200))', this request is '\(route.prefix(200))'")
            }
            let opened = try channel.open(envelope)
            guard try await sessions.admit(sandboxID, nonce: opened.nonce, route: route) else {
                throw OmniRunError(.invalidArgument, "replayed e2ee envelope: this nonce was already used for this sandbox")
            }
            nonce = opened.nonce
            request.body = RequestBody(buffer: ByteBuffer(bytes: opened.plaintext))
        }
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            if let nonce, Self.retryable(APIError.status(for: APIError.normalize(error).code).code) {
                await sessions.release(sandboxID, nonce: nonce, route: route)
            }
            throw error
        }
        if let nonce, Self.retryable(response.status.code) { await sessions.release(sandboxID, nonce: nonce, route: route) }
        return try await Self.seal(response, channel: channel, route: route)
    }

    /// `<METHOD> <target>`: what a request envelope's `aad` must say (the target as sent:
    /// path and query).
    static func route(_ request: Request) -> String {
        "\(request.method.rawValue) \(request.head.path ?? request.uri.description)"
    }

    /// Whether a GET's client asks for a sealed answer (it holds the key).
    static func wantsSealedAnswer(_ request: Request) -> Bool {
        guard let name = HTTPField.Name(sealHeader), let value = request.headers[name] else { return false }
        return value.lowercased() == "seal"
    }

    static let sealHeader = "X-OmniRun-E2EE"

    /// Why a plaintext body is refused, and what to do about it.
    static func plaintextRefused(_ sandboxID: String) -> String {
        (sandboxID.isEmpty ? "this sandbox" : "sandbox \(sandboxID)") + " uses end-to-end encryption: a request body must be sealed with its key as "
            + "{\"_encrypted\": {alg, nonce, ciphertext, aad?}} (plaintext bodies are refused). A client without the key "
            + "(Sandbox.connect(), a new CLI process) can read this sandbox but not act in it: use the client that created it"
    }

    /// The SDK retries these once with the same body.
    static func retryable(_ status: Int) -> Bool { [500, 502, 503, 504].contains(status) }

    /// Routes whose bodies the SDK never encrypts (relative to `/sandboxes/{id}`).
    static func staysPlaintext(_ rest: [String]) -> Bool {
        if rest == ["files", "upload"] { return true }
        if rest.count == 3, rest[0] == "contexts", rest[2] == "stream-execute" { return true }
        return false
    }

    /// Routes the SDK calls without a body (pause, resume, a context's restart): nothing to open.
    static func bodyless(_ rest: [String]) -> Bool {
        rest == ["pause"] || rest == ["resume"] || (rest.count == 3 && rest[0] == "contexts" && rest[2] == "restart")
    }

    /// The request body must be exactly `{"_encrypted": {alg, nonce, ciphertext, aad?}}`.
    static func envelope(_ data: Data, sandboxID: String = "") throws -> E2EEChannel.Envelope {
        struct Wrapper: Decodable {
            var _encrypted: E2EEChannel.Envelope
        }
        let plaintextRefused = Self.plaintextRefused(sandboxID)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], object.keys.contains("_encrypted")
        else {
            throw OmniRunError(.invalidArgument, plaintextRefused)
        }
        guard object.count == 1 else {
            throw OmniRunError(.invalidArgument, "an e2ee request body holds only \"_encrypted\" (no plaintext fields beside it)")
        }
        guard let envelope = try? JSONDecoder().decode(Wrapper.self, from: data)._encrypted else {
            throw OmniRunError(
                .invalidArgument, "malformed e2ee envelope: \"_encrypted\" must be {alg, nonce, ciphertext, aad?}, all strings")
        }
        return envelope
    }

    /// Seals a 2xx JSON answer (bound to its request); anything else passes as it is.
    static func seal(_ response: Response, channel: E2EEChannel, route: String) async throws -> Response {
        guard (200..<300).contains(response.status.code), response.status != .noContent,
            response.headers[.contentType]?.hasPrefix("application/json") == true
        else {
            return response
        }
        let collector = BodyCollector()
        try await response.body.write(collector)
        let envelope = try channel.seal(Data(buffer: collector.buffer), aad: "response " + route)
        var headers = response.headers
        headers[.contentLength] = nil
        return JSON.response(["_encrypted": envelope], status: response.status, headers: headers)
    }
}

/// Reads a response body that is already in memory (JSON answers are one buffer).
private final class BodyCollector: ResponseBodyWriter {
    var buffer = ByteBuffer()

    func write(_ buffer: ByteBuffer) async throws {
        var buffer = buffer
        self.buffer.writeBuffer(&buffer)
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
