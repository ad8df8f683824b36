import Foundation
import OmniRunCore
import OmniRunError

extension SandboxRuntime {
    /// Checks that internet access is possible here and takes the template's snapshot
    /// with a network card if it has none yet (outside the create limiter: it is shared).
    func prepareNetwork(_ spec: SandboxSpec, built: TemplateImage) async throws {
        if let reason = await network.availability() {
            throw OmniRunError(.unavailable, "internet access is not available on this server: \(reason)")
        }
        guard !spec.coldBoot else { throw OmniRunError(.invalidArgument, "internet access needs a snapshot restore") }
        _ = try await snapshots.snapshot(for: built.image, setup: setup(of: built), network: true)
    }

    /// Restores the template's snapshot that has a network card, inside a namespace of
    /// its own (pooled machines have no card, so these never come from the pool).
    func restoreWithNetwork(_ spec: SandboxSpec, built: TemplateImage, options: MachineOptions) async throws
        -> any MachineInstance
    {
        guard let id = SandboxID(options.name) else { throw OmniRunError(.internalError, "bad sandbox id \(options.name)") }
        let snapshot = try await snapshots.snapshot(for: built.image, setup: setup(of: built), network: true)
        var options = options
        options.nic = try await network.setUp(id, policy: spec.egress)
        do {
            return try await driver.restore(snapshot: snapshot, options: options)
        } catch {
            await network.tearDown(id)
            throw error
        }
    }

    /// Takes a template's snapshot with a network card ahead of the first sandbox with
    /// internet access (`omnirun serve --prepare`).
    @discardableResult
    public func prepareNetworkSnapshot(template: String) async throws -> MachineSnapshot {
        let built = try catalog.template(named: template)
        return try await snapshots.snapshot(for: built.image, setup: setup(of: built), network: true)
    }
}
