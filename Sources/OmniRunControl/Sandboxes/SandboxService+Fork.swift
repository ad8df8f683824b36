import Foundation
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// Fork: copies of a running sandbox that start from its memory, devices and disk.
extension SandboxService {
    package static let maxForkCount = 10

    /// `POST /sandboxes/{id}/fork {count}`: `count` new running sandboxes of the same
    /// account, template, timeout, metadata and environment, each with its own id, hostname,
    /// machine id, entropy and clock. They count against the limits like creates (all or
    /// none). The sandbox itself is saved for a moment and continues afterwards.
    package func fork(_ id: String, count: Int, account: AccountRecord, vaultVariables: [String: String]?) async throws -> [SandboxRecord] {
        guard (1...Self.maxForkCount).contains(count) else {
            throw OmniRunError(.invalidArgument, "count must be between 1 and \(Self.maxForkCount)")
        }
        let record = try await record(id, account: account)
        guard let sandboxID = SandboxID(record.id) else { throw notFound(id) }
        guard record.state == .running else {
            throw OmniRunError(.conflict, "sandbox \(id) is paused: resume it before forking it")
        }
        try checkTakesSandboxes()
        guard await runtime.running.count + pendingTotal + count <= configuration.maxSandboxes else {
            throw OmniRunError(.unavailable, "this node is full (\(configuration.maxSandboxes) sandboxes)")
        }
        pending[account.id, default: 0] += count
        pendingTotal += count
        defer {
            pending[account.id, default: count] -= count
            pendingTotal -= count
        }
        let place = try await admit(account, count: count)
        do {
            let forks = try await exclusive(sandboxID, kind: .fork) {
                try await self.forkNow(sandboxID, count: count, owner: account, vaultVariables: vaultVariables)
            }
            await release(place)
            return forks
        } catch {
            await release(place)
            throw error
        }
    }

    private func forkNow(
        _ id: SandboxID, count: Int, owner: AccountRecord, vaultVariables: [String: String]?
    ) async throws -> [SandboxRecord] {
        guard let record = try await current(id) else { throw notFound(id.rawValue) }
        guard record.state == .running else { throw OmniRunError(.conflict, "sandbox \(id) is paused: resume it before forking it") }
        let started = ContinuousClock.now
        // The same environment a create of this sandbox was given (the LLM proxy's address first).
        let userProvided = record.env.merging(vaultVariables ?? [:]) { $1 }
        let env = LLMSandboxEnvironment.variables(userProvided: userProvided).merging(record.env) { $1 }
        let specs = (0..<count).map { _ in
            SandboxSpec(template: record.template, id: SandboxID.random(), env: env, defaultUser: "user", envFileVars: vaultVariables)
        }
        await gateway.stop(id)
        let forked: (parent: Sandbox, copies: [Sandbox])
        do {
            forked = try await runtime.fork(id, template: record.template, copies: specs)
        } catch ForkError.parentPaused(let error) {
            // Saved but not brought back: it is paused (a resume may work later).
            let now = nowMillis()
            let bytes = SandboxRuntime.diskUsage(of: runtime.machineDirectory(of: id))
            try? await repository.markPaused(id: record.id, at: now, bytes: bytes)
            recordCache[id] = nil
            activity[id] = nil
            await publish(.paused, record, reason: "fork failed")
            throw error
        } catch {
            if let sandbox = await runtime.sandbox(id) {
                await gateway.start(sandbox, owner: owner, onRequest: activity(id))
            } else {
                try? await repository.markEnded(id: record.id, reason: .failed("fork"), at: nowMillis())
                try? await samples.delete(sandboxID: record.id)
                metrics.increment("omnirun_sandboxes_ended_total{reason=\"failed\"}")
                recordCache[id] = nil
                activity[id] = nil
                await publish(.ended(.failed("fork")), record)
            }
            throw OmniRunError(.unavailable, "forking sandbox \(id) failed: \((error as? OmniRunError)?.message ?? "\(error)")")
        }
        // The sandbox runs on a new machine (a new VMM process).
        try await repository.setMachine(id: record.id, directory: forked.parent.machine.directory, pid: forked.parent.machine.processID)
        var parent = record
        parent.machinePID = forked.parent.machine.processID
        recordCache[id] = parent
        activity[id] = nowMillis()
        await gateway.start(forked.parent, owner: owner, onRequest: activity(id))

        var records: [SandboxRecord] = []
        for (index, sandbox) in forked.copies.enumerated() {
            let copy = runningRecord(
                sandbox, accountID: owner.id, template: record.template, timeoutSeconds: record.timeoutSeconds,
                metadata: record.metadata, env: record.env, vaultInject: record.vaultInject, cpuCount: record.cpuCount,
                memoryMB: record.memoryMB, autoPause: record.autoPause)
            do {
                try await repository.insert(copy)
            } catch {
                for rest in forked.copies[index...] { await runtime.destroy(rest.id) }
                throw error
            }
            recordCache[sandbox.id] = copy
            activity[sandbox.id] = copy.createdAt
            metrics.increment("omnirun_sandboxes_created_total")
            await publish(.created, copy, reason: "fork of \(id)")
            await gateway.start(sandbox, owner: owner, onRequest: activity(sandbox.id))
            records.append(copy)
        }
        metrics.observe("omnirun_sandbox_fork_seconds", seconds: ServerMetrics.seconds(ContinuousClock.now - started))
        logger.info(
            "sandbox forked",
            metadata: ["sandbox": "\(id)", "copies": "\(count)", "took": "\(ContinuousClock.now - started)"])
        return records
    }
}
