import Foundation
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunE2EE
import OmniRunError

/// Wire protocol §12 on the account-level routes an e2ee client seals as well: the public
/// SDK's sandbox object sends `sbx.webhooks.create()` through the sandbox's own HTTP client,
/// which seals every POST body (`POST /webhooks {"_encrypted": envelope}`). Such an envelope
/// names no sandbox, so it is opened with the channel of whichever of the caller's own e2ee
/// sandboxes it authenticates under (AES-GCM: only the right key opens it); its nonce is
/// then admitted for that sandbox like any other request's (a replay is refused), and a 2xx
/// JSON answer is sealed back with the same channel (`aad` `response POST /webhooks`).
/// A plaintext body passes as it is: these routes serve clients without e2ee too.
struct E2EEAccountMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let sessions: E2EESessions
    let service: SandboxService
    /// POST routes outside `/sandboxes/{id}` whose bodies an e2ee client seals.
    static let sealedRoutes: Set<String> = ["/webhooks"]
    /// The largest body read on them (their JSON bodies are small).
    static let maxBody = 256 << 10
    /// The most channels one envelope is tried against (an account's live sandboxes are
    /// bounded by its running and paused limits; this bounds the work whatever they are).
    static let maxChannels = 128

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .post, Self.sealedRoutes.contains(request.uri.path) else {
            return try await next(request, context)
        }
        var request = request
        let body = try await JSON.collect(&request, limit: Self.maxBody)
        guard Self.isEnvelope(body) else {
            request.body = RequestBody(buffer: body)
            return try await next(request, context)
        }
        let account = try context.requireAccount()
        let envelope = try E2EEMiddleware.envelope(Data(buffer: body))
        let route = E2EEMiddleware.route(request)
        if let aad = envelope.aad, !aad.isEmpty, aad != route {
            throw OmniRunError(
                .invalidArgument,
                "this e2ee envelope is bound to another request: its aad is '\(aad.prefix(200))', this request is '\(route.prefix(200))'")
        }
        var sealer: (sandboxID: String, channel: E2EEChannel, opened: E2EEChannel.Opened)?
        var tried = 0
        for record in try await service.list(account: account) where tried < Self.maxChannels {
            guard let channel = await sessions.channel(record.id) else { continue }
            tried += 1
            do {
                sealer = (record.id, channel, try channel.open(envelope))
                break
            } catch let error as OmniRunError where error.message.hasPrefix("e2ee envelope does not authenticate") {
                continue
            }
        }
        guard let sealer else {
            throw OmniRunError(
                .invalidArgument,
                tried == 0
                    ? "an e2ee envelope was sent, but none of your running or paused sandboxes uses e2ee"
                    : "this e2ee envelope does not open with the key of any of your e2ee sandboxes (tampered, or sealed for a sandbox that ended)")
        }
        guard try await sessions.admit(sealer.sandboxID, nonce: sealer.opened.nonce, route: route) else {
            throw OmniRunError(.invalidArgument, "replayed e2ee envelope: this nonce was already used for this sandbox")
        }
        request.body = RequestBody(buffer: ByteBuffer(bytes: sealer.opened.plaintext))
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            if E2EEMiddleware.retryable(APIError.status(for: APIError.normalize(error).code).code) {
                await sessions.release(sealer.sandboxID, nonce: sealer.opened.nonce, route: route)
            }
            throw error
        }
        if E2EEMiddleware.retryable(response.status.code) {
            await sessions.release(sealer.sandboxID, nonce: sealer.opened.nonce, route: route)
        }
        return try await E2EEMiddleware.seal(response, channel: sealer.channel, route: route)
    }

    /// A JSON object with an `_encrypted` member (checked in full by `E2EEMiddleware.envelope`).
    static func isEnvelope(_ body: ByteBuffer) -> Bool {
        guard body.readableBytes > 0,
            let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
        else { return false }
        return object.keys.contains("_encrypted")
    }
}
