import Hummingbird
import OmniRunControl
import OmniRunCore
import OmniRunError

/// Every route under `/sandboxes/{id}` first checks that the sandbox exists and
/// belongs to the caller (or to the signed URL), so another account's sandbox is a
/// 404 everywhere, before any body is read or validated.
struct OwnershipMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let service: SandboxService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let parts = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
        if parts.count >= 2, parts[0] == "sandboxes", parts[1] != "history" {
            let id = String(parts[1])
            if let signed = context.signedSandboxID {
                guard signed == id else { throw OmniRunError(.forbidden, "the signed URL is for another sandbox") }
                _ = try await service.record(id, account: nil)
            } else if parts.count >= 3, parts[2] == "exposures", request.method == .get {
                // What an ended sandbox's exposures became (`sandbox_stopped`) stays readable.
                let record = try await service.anyRecord(id, account: try context.requireAccount())
                guard record.state == .running else { return try await next(request, context) }
            } else {
                _ = try await service.record(id, account: try context.requireAccount())
            }
            // Any call on a sandbox is activity (idle auto-kill).
            if let sandboxID = SandboxID(id) { await service.touch(sandboxID) }
        }
        return try await next(request, context)
    }
}
