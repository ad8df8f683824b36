import OmniRunCore
import OmniRunStore
import SandboxRuntime

/// The host end of a sandbox's gateway (the guest's `127.0.0.1:18080`: the LLM proxy and the
/// API as its owner). The HTTP edge serves it; the sandbox service opens it when a sandbox
/// starts or resumes and closes it when it pauses or ends.
package protocol SandboxHostGateway: Sendable {
    /// Serves `sandbox`'s gateway as `owner`; `onRequest` runs for each request (activity
    /// for the idle kill).
    func start(_ sandbox: Sandbox, owner: AccountRecord, onRequest: @escaping @Sendable () async -> Void) async
    /// Closes the gateway of `id` (nothing if it has none).
    func stop(_ id: SandboxID) async
}
