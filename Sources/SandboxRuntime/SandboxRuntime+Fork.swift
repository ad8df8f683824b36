import AgentClient
import AgentProtocol
import Foundation
import OmniRunCore
import OmniRunError

/// Fork: copies of a running sandbox, each starting from its memory, devices and disk
/// as they are at the fork.
extension SandboxRuntime {
    /// The sandbox is paused (saved whole, as by `pause`), its disk frozen as a read-only
    /// layer under a fresh overlay of its own and one per copy; it resumes on its overlay,
    /// and every copy resumes from the same saved state on its own, then takes its own
    /// identity (sandbox id, hostname, machine id, fresh entropy for the guest's RNG, the
    /// clock). `copies` name the new sandboxes (id set) and their environment.
    ///
    /// Returns the sandbox on its new machine and the copies, in the order asked. If the
    /// copies cannot be made the sandbox is resumed and the error thrown; if the sandbox
    /// itself cannot be resumed it stays paused (its saved state is kept) and the error
    /// says so (`ForkError.parentPaused`).
    public func fork(_ id: SandboxID, template: String, copies: [SandboxSpec]) async throws -> (parent: Sandbox, copies: [Sandbox]) {
        guard sandboxes[id] != nil else { throw OmniRunError(.notFound, "sandbox \(id) is not running") }
        let ids = copies.compactMap(\.id)
        guard ids.count == copies.count, Set(ids).count == ids.count, ids.allSatisfy({ sandboxes[$0] == nil && $0 != id }) else {
            throw OmniRunError(.invalidArgument, "every copy needs its own new id")
        }
        let started = ContinuousClock.now
        let paused = try await pause(id)
        let saved = ContinuousClock.now
        let directories = ids.map { machineDirectory(of: $0) }
        let forked: [PausedMachine]
        do {
            forked = try await driver.fork(paused, into: directories)
        } catch {
            for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
            try await resumeParent(id, template: template, after: error)
            throw error
        }
        // The sandbox and its copies resume at once (each through the create limiter).
        let resumingParent = Task { try await self.resumeParent(id, template: template, after: nil) }
        var made: [SandboxID: Sandbox] = [:]
        var copyError: (any Error)? = nil
        do {
            made = try await withThrowingTaskGroup(of: Sandbox.self) { group in
                for (spec, copy) in zip(copies, forked) {
                    group.addTask { try await self.resumeCopy(copy, spec: spec, template: template) }
                }
                var made: [SandboxID: Sandbox] = [:]
                for try await sandbox in group { made[sandbox.id] = sandbox }
                return made
            }
        } catch {
            copyError = error
        }
        let resumed = await resumingParent.result
        if copyError != nil || (try? resumed.get()) == nil {
            for copy in ids {
                await destroy(copy)
                try? FileManager.default.removeItem(atPath: machineDirectory(of: copy))
            }
        }
        // A sandbox that did not resume keeps its saved state (it stays paused).
        let parent = try resumed.get()
        discardPausedState(id)
        if let copyError { throw copyError }
        logger.info(
            "sandbox forked",
            metadata: [
                "sandbox": "\(id)", "copies": "\(ids.map(\.rawValue).joined(separator: ","))",
                "saved": "\(saved - started)", "took": "\(ContinuousClock.now - started)",
            ])
        return (parent, ids.compactMap { made[$0] })
    }

    /// Resumes the forked sandbox; with `after` (the fork failed) its saved state goes too.
    @discardableResult
    private func resumeParent(_ id: SandboxID, template: String, after failure: (any Error)?) async throws -> Sandbox {
        do {
            let sandbox = try await resume(id, template: template)
            // The copies resume from the saved state: it goes once they have.
            if failure != nil { discardPausedState(id) }
            return sandbox
        } catch {
            throw ForkError.parentPaused(
                OmniRunError(.unavailable, "sandbox \(id) was saved to be forked but did not resume (it stays paused): \(error)"
                    + (failure.map { "; the fork failed first: \($0)" } ?? "")))
        }
    }

    private func resumeCopy(_ copy: PausedMachine, spec: SandboxSpec, template: String) async throws -> Sandbox {
        guard let id = spec.id else { throw OmniRunError(.invalidArgument, "a copy needs an id") }
        let built = try catalog.template(named: template)
        let options = MachineOptions(name: id.rawValue, directory: copy.directory)
        let machine = try await createLimiter.run { try await self.driver.resume(copy, options: options) }
        do {
            let agent = try await GuestAgentClient.connect(
                socketPath: machine.agentSocketPath, name: "sandbox \(id)", timeout: max(configuration.agentTimeout, .seconds(60)),
                logger: logger, giveUpIf: { await machine.state.isTerminal ? "\(await machine.state)" : nil })
            try await Self.initialize(agent, id: id, spec: spec, defaults: built.defaults)
            let sandbox = Sandbox(id: id, template: template, machine: machine, agent: agent)
            sandboxes[id] = sandbox
            watch(sandbox)
            return sandbox
        } catch {
            await machine.destroy()
            throw error
        }
    }
}

/// A fork that failed after its sandbox was saved and could not be brought back.
public enum ForkError: Error {
    case parentPaused(OmniRunError)
}
