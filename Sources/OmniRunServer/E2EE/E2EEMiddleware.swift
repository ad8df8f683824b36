import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OmniRunError

/// Wire protocol §12 on the routes of an e2ee sandbox (`/sandboxes/{id}/...`):
/// - a POST must carry exactly `{"_encrypted": envelope}`; it is opened (once: a seen nonce
///   is a replay) and the handler gets the plaintext JSON. A plaintext or missing body is
///   refused, so a downgrade cannot pass silently; only the routes the SDK calls without a
///   body (pause, resume, a context's restart) may have none.
/// - a 2xx JSON answer to a POST or GET is sealed as `{"_encrypted": envelope}`; errors stay
///   plaintext (the SDK reads them before it decrypts).
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
        guard request.method == .post else {
            return try await seal(try await next(request, context), channel: channel, sandboxID: sandboxID)
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
            throw OmniRunError(
                .invalidArgument, "this sandbox uses end-to-end encryption: the request body must be an {\"_encrypted\": ...} envelope")
        }
        if body.readableBytes > 0 {
            let opened = try channel.open(try Self.envelope(Data(buffer: body)))
            guard await sessions.admit(sandboxID, nonce: opened.nonce) else {
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
                await sessions.release(sandboxID, nonce: nonce)
            }
            throw error
        }
        if let nonce, Self.retryable(response.status.code) { await sessions.release(sandboxID, nonce: nonce) }
        return try await seal(response, channel: channel, sandboxID: sandboxID)
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
    static func envelope(_ data: Data) throws -> E2EEChannel.Envelope {
        struct Wrapper: Decodable {
            var _encrypted: E2EEChannel.Envelope
        }
        let plaintextRefused =
            "this sandbox uses end-to-end encryption: the request body must be {\"_encrypted\": {alg, nonce, ciphertext, aad?}} (plaintext bodies are refused)"
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

    /// Seals a 2xx JSON answer; anything else passes as it is.
    func seal(_ response: Response, channel: E2EEChannel, sandboxID: String) async throws -> Response {
        guard (200..<300).contains(response.status.code), response.status != .noContent,
            response.headers[.contentType]?.hasPrefix("application/json") == true
        else {
            return response
        }
        let collector = BodyCollector()
        try await response.body.write(collector)
        let envelope = try channel.seal(Data(buffer: collector.buffer))
        if let nonce = Data(base64Encoded: envelope.nonce) { await sessions.noteResponse(sandboxID, nonce: Array(nonce)) }
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
