import Hummingbird
import OmniRunControl
import OmniRunCore
import OmniRunError
import OmniRunStore

/// Every route under `/sandboxes/{id}` first checks that the sandbox exists and
/// belongs to the caller (or to the signed URL), so another account's sandbox is a
/// 404 everywhere, before any body is read or validated.
/// A sandbox another node of the cluster runs is relayed to that node (`NodeRelay`).
struct OwnershipMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let service: SandboxService
    let relay: NodeRelay?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let parts = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
        if parts.count >= 2, parts[0] == "sandboxes", parts[1] != "history" {
            let id = String(parts[1])
            let record: SandboxRecord
            if let signed = context.signedSandboxID {
                guard signed == id else { throw OmniRunError(.forbidden, "the signed URL is for another sandbox") }
                record = try await service.record(id, account: nil)
            } else if parts.count >= 3, parts[2] == "exposures", request.method == .get {
                // What an ended sandbox's exposures became (`sandbox_stopped`) stays readable.
                record = try await service.anyRecord(id, account: try context.requireAccount())
                guard record.state == .running else { return try await next(request, context) }
            } else {
                record = try await service.record(id, account: try context.requireAccount())
            }
            if let relay, let owner = record.nodeID, owner != service.configuration.nodeID {
                return try await relay.forward(request, to: owner)
            }
            // Any call on a sandbox is activity (idle auto-kill).
            if let sandboxID = SandboxID(id) { await service.touch(sandboxID) }
        }
        return try await next(request, context)
    }
}
