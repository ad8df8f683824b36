import Foundation
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// Pause, resume and auto-pause. A pause, a resume and a kill of one sandbox take
/// turns: a second pause while one runs waits for it and then finds the sandbox
/// paused (the answer is the same); a kill waits and then deletes whatever is left.
/// Calls on a paused sandbox (commands, files, …) are a 409 that says to resume it.
extension SandboxService {
    /// Runs `work` once no other pause, resume or kill of this sandbox is under way.
    /// The work runs in its own task, so a caller that goes away does not cut a pause
    /// in half.
    ///
    /// A waiter removes a finished transition itself: its caller may not have run again
    /// yet, and awaiting a task that has finished does not suspend, so a waiter that only
    /// looped until the entry went away would spin on this actor and the caller (the
    /// only one who would remove it) could never run: two racing pauses hung every call
    /// of the server. Each entry has its own number, so a caller removes only its own.
    package func exclusive<T: Sendable>(
        _ id: SandboxID, kind: Transition, _ work: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        var waitedForMove = false
        while let busy = transitions[id] {
            if busy.kind == .move { waitedForMove = true }
            await busy.task.value
            if transitions[id]?.number == busy.number { transitions[id] = nil }
        }
        // A move that went through while this waited: the sandbox is another node's now.
        if waitedForMove, kind != .move, let stored = try await repository.find(id: id.rawValue), let owner = stored.nodeID,
            owner != configuration.nodeID
        {
            throw OmniRunError(.unavailable, "sandbox \(id) moved to node \(owner) while this request waited; send it again")
        }
        transitionNumber &+= 1
        let number = transitionNumber
        let task = Task<T, any Error> { try await work() }
        transitions[id] = (number, kind, Task { _ = await task.result })
        defer { if transitions[id]?.number == number { transitions[id] = nil } }
        return try await task.value
    }

    /// The stored record of a running or paused sandbox, read again (after a wait).
    package func current(_ id: SandboxID) async throws -> SandboxRecord? {
        guard let stored = try await repository.find(id: id.rawValue), stored.state.isLive else { return nil }
        return stored
    }

    /// `POST /sandboxes/{id}/pause`: the sandbox's state afterwards (`paused`).
    package func pause(_ id: String, account: AccountRecord) async throws -> SandboxState {
        let record = try await record(id, account: account)
        guard let sandboxID = SandboxID(record.id) else { throw notFound(id) }
        return try await exclusive(sandboxID, kind: .pause) { try await self.pauseNow(sandboxID, reason: .requested) }
    }

    /// `POST /sandboxes/{id}/resume`: the sandbox's state afterwards (`running`).
    package func resume(_ id: String, account: AccountRecord) async throws -> SandboxState {
        let record = try await record(id, account: account)
        guard let sandboxID = SandboxID(record.id) else { throw notFound(id) }
        return try await exclusive(sandboxID, kind: .resume) { try await self.resumeNow(sandboxID, owner: account) }
    }

    /// A timeout or idleness: paused if the sandbox asked for it (`autoPause`), else ended;
    /// also ended when its account has as many paused sandboxes as it may keep.
    package func expire(_ record: SandboxRecord, reason: EndReason) async {
        guard let id = SandboxID(record.id) else { return }
        do {
            if record.autoPause {
                do {
                    let pauseReason: PauseReason = reason == .idle ? .idle : .timeout
                    _ = try await exclusive(id, kind: .pause) { try await self.pauseNow(id, reason: pauseReason) }
                } catch let error as OmniRunError where error.code == .limitReached {
                    logger.warning(
                        "the account's paused sandbox limit is reached: the sandbox ends instead of pausing",
                        metadata: ["sandbox": "\(id)", "reason": "\(reason)"])
                    if let current = try await current(id), current.state == .running { try await end(current, reason: reason) }
                }
            } else {
                try await end(record, reason: reason)
            }
        } catch {
            logger.error("ending or pausing an expired sandbox failed", metadata: ["sandbox": "\(id)", "error": "\(error)"])
        }
    }

    private func pauseNow(_ id: SandboxID, reason: PauseReason) async throws -> SandboxState {
        guard var record = try await current(id) else { throw notFound(id.rawValue) }
        if record.state == .paused { return .paused }
        // The per-account limit, counting pauses under way (never more, at worst one fewer
        // when two race for the last place).
        let limit = configuration.quotas.pausedPerAccount
        pausing[record.accountID, default: 0] += 1
        defer { pausing[record.accountID, default: 1] -= 1 }
        let alreadyPaused = try await repository.countPaused(accountID: record.accountID)
        guard alreadyPaused + pausing[record.accountID, default: 1] <= limit else {
            throw OmniRunError(
                .limitReached,
                "paused sandbox limit reached: this account may keep \(limit) sandboxes paused; resume or kill one first")
        }
        let started = ContinuousClock.now
        await gateway.stop(id)
        let paused: PausedMachine
        do {
            paused = try await runtime.pause(id)
        } catch {
            if let sandbox = await runtime.sandbox(id) {
                // Still running: it keeps its gateway.
                if let owner = try? await accounts.find(id: record.accountID) {
                    await gateway.start(sandbox, owner: owner, onRequest: activity(id))
                }
            } else {
                try? await repository.markEnded(id: record.id, reason: .failed("pause"), at: nowMillis())
                try? await samples.delete(sandboxID: record.id)
                metrics.increment("omnirun_sandboxes_ended_total{reason=\"failed\"}")
                recordCache[id] = nil
                activity[id] = nil
                await publish(.ended(.failed("pause")), record)
            }
            throw error
        }
        let now = nowMillis()
        let bytes = SandboxRuntime.diskUsage(of: paused.directory)
        try await repository.markPaused(id: record.id, at: now, bytes: bytes)
        record.state = .paused
        record.pausedAt = now
        record.pausedBytes = bytes
        record.machinePID = nil
        record.expiresAt = nil
        recordCache[id] = record
        activity[id] = nil
        metrics.increment("omnirun_sandbox_pauses_total{reason=\"\(reason.rawValue)\"}")
        await publish(.paused, record, reason: reason.rawValue)
        metrics.observe("omnirun_sandbox_pause_seconds", seconds: ServerMetrics.seconds(ContinuousClock.now - started))
        logger.info(
            "sandbox paused",
            metadata: [
                "sandbox": "\(id)", "reason": "\(reason.rawValue)", "bytes": "\(bytes)", "took": "\(ContinuousClock.now - started)",
            ])
        return .paused
    }

    private func resumeNow(_ id: SandboxID, owner: AccountRecord) async throws -> SandboxState {
        guard var record = try await current(id) else { throw notFound(id.rawValue) }
        if record.state == .running { return .running }
        // A resumed sandbox counts against the limits like a new one.
        let running = try await repository.countRunning(accountID: owner.id)
        guard running + pending[owner.id, default: 0] < owner.concurrentLimit else {
            throw OmniRunError(
                .sandboxLimit,
                "concurrent sandbox limit reached: \(owner.concurrentLimit) sandboxes may run at once for this account")
        }
        guard await runtime.running.count + pendingTotal < configuration.maxSandboxes else {
            throw OmniRunError(.unavailable, "this node is full (\(configuration.maxSandboxes) sandboxes)")
        }
        pending[owner.id, default: 0] += 1
        pendingTotal += 1
        defer {
            pending[owner.id, default: 1] -= 1
            pendingTotal -= 1
        }
        let started = ContinuousClock.now
        // A sandbox with internet access comes back under the egress policy it last had.
        var egress: EgressPolicy? = nil
        if let stored = try await network.find(sandboxID: record.id), stored.internet, let text = stored.policy {
            egress = try JSONDecoder().decode(EgressPolicy.self, from: Data(text.utf8))
        }
        let sandbox = try await runtime.resume(id, template: record.template, egress: egress)
        let now = nowMillis()
        let expiresAt = record.timeoutSeconds > 0 ? now + record.timeoutSeconds * 1000 : nil
        try await repository.markResumed(id: record.id, pid: sandbox.machine.processID, expiresAt: expiresAt, at: now)
        runtime.discardPausedState(id)
        record.state = .running
        record.pausedAt = nil
        record.pausedBytes = nil
        record.machinePID = sandbox.machine.processID
        record.expiresAt = expiresAt
        record.lastActivityAt = now
        recordCache[id] = record
        activity[id] = now
        await gateway.start(sandbox, owner: owner, onRequest: activity(id))
        metrics.increment("omnirun_sandbox_resumes_total")
        await publish(.resumed, record)
        metrics.observe("omnirun_sandbox_resume_seconds", seconds: ServerMetrics.seconds(ContinuousClock.now - started))
        logger.info("sandbox resumed", metadata: ["sandbox": "\(id)", "took": "\(ContinuousClock.now - started)"])
        return .running
    }

    /// Deletes the sandboxes that stayed paused longer than the retention allows (with a
    /// `timeout` event, reason `retention`); a resume or kill under way goes first.
    package func deletePausedPastRetention(now: Int64) async {
        let cutoff = now - configuration.quotas.pausedRetentionSeconds * 1000
        guard let expired = try? await repository.paused(before: cutoff) else { return }
        for record in expired where record.nodeID == nil || record.nodeID == configuration.nodeID {
            guard let id = SandboxID(record.id), transitions[id] == nil else { continue }
            do {
                try await exclusive(id, kind: .kill) {
                    guard let current = try await self.current(id), current.state == .paused,
                        let pausedAt = current.pausedAt, pausedAt < cutoff
                    else { return }
                    try await self.end(current, reason: .retention)
                }
            } catch {
                logger.error("deleting a paused sandbox past its retention failed", metadata: ["sandbox": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Warm pool machines per built-in template (`GET /metrics`, which is open: custom
    /// templates' names stay out of it).
    package func poolSizes() async -> [String: (ready: Int, target: Int)] {
        var sizes: [String: (ready: Int, target: Int)] = [:]
        for template in runtime.catalog.builtInTemplates() {
            let figures = await runtime.poolFigures(template)
            sizes[template] = (figures?.ready ?? 0, figures?.target ?? 0)
        }
        return sizes
    }

    /// Paused sandboxes on the store and the disk they use (`GET /status`).
    package func pausedUsage() async -> (count: Int, bytes: Int64) {
        (try? await repository.pausedUsage()) ?? (0, 0)
    }
}
