import Foundation
import Logging
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// What a create asks for (the wire's fields, validated).
package struct CreateSandboxRequest: Sendable {
    package var template: String
    package var timeoutSeconds: Int64
    package var env: [String: String]
    package var metadata: [String: String]
    package var vaultInject: Bool
    package var memoryMB: Int?
    package var autoPause: Bool = false
    /// The owner's vault, opened, when `vaultInject` (written to `/tmp/.omnirun-env` after restore).
    package var vaultVariables: [String: String]? = nil
    /// A network card, a route out and this egress policy (docs/networking.md).
    package var internet = false
    package var egress: EgressPolicy? = nil
    /// A desktop's screen when not the snapshot's (`RESOLUTION`).
    package var screenSize: ScreenSize? = nil

    package init(
        template: String, timeoutSeconds: Int64, env: [String: String], metadata: [String: String], vaultInject: Bool,
        memoryMB: Int? = nil, autoPause: Bool = false, vaultVariables: [String: String]? = nil, internet: Bool = false,
        egress: EgressPolicy? = nil, screenSize: ScreenSize? = nil
    ) {
        self.template = template
        self.timeoutSeconds = timeoutSeconds
        self.env = env
        self.metadata = metadata
        self.vaultInject = vaultInject
        self.memoryMB = memoryMB
        self.autoPause = autoPause
        self.vaultVariables = vaultVariables
        self.internet = internet
        self.egress = egress
        self.screenSize = screenSize
    }
}

/// The sandboxes of every account on this node: limits, timeouts, idle kills,
/// history, and recovery after a restart. Routes call it; it calls the runtime.
package actor SandboxService {
    package nonisolated let runtime: SandboxRuntime
    package nonisolated let repository: SandboxRepository
    package nonisolated let accounts: AccountRepository
    package nonisolated let gateway: any SandboxHostGateway
    /// Sandboxes' internet access and egress policies (a resume builds the network again).
    package nonisolated let network: SandboxNetworkRepository
    package nonisolated let configuration: ServerConfiguration
    /// The server's counters (`GET /metrics`) and the sandboxes' samples (removed at the end).
    package nonisolated let metrics: ServerMetrics
    package nonisolated let samples: MetricsRepository
    package nonisolated let logger: Logger
    /// The cluster's nodes and the places creates hold against their account's limit.
    package nonisolated let nodes: NodeRepository
    /// Set from this node's record (`omnirun node drain`): it takes no new sandboxes.
    package var draining = false
    /// Creates admitted but not finished, per account (so racing creates never overshoot).
    package var pending: [String: Int] = [:]
    package var pendingTotal = 0
    /// Last activity per sandbox, flushed to the store now and then.
    package var activity: [SandboxID: Int64] = [:]
    package var recordCache: [SandboxID: SandboxRecord] = [:]
    /// Pauses under way per account (they count against its paused limit until stored).
    package var pausing: [String: Int] = [:]
    /// Pauses, resumes and kills under way, per sandbox (they take turns; see `exclusive`).
    package var transitions: [SandboxID: (number: UInt64, kind: Transition, task: Task<Void, Never>)] = [:]
    /// The last number given to a transition (`exclusive`).
    package var transitionNumber: UInt64 = 0
    /// Where what happens to sandboxes is told (webhooks, exposures, e2ee, terminals).
    package nonisolated let lifecycle: SandboxLifecycle
    /// Refuses templates the account may not use (another account's custom template).
    private let templateAccess: @Sendable (String, AccountRecord) async throws -> Void

    package init(
        runtime: SandboxRuntime, repository: SandboxRepository, accounts: AccountRepository, gateway: any SandboxHostGateway,
        network: SandboxNetworkRepository, configuration: ServerConfiguration, metrics: ServerMetrics, samples: MetricsRepository,
        lifecycle: SandboxLifecycle, templateAccess: @escaping @Sendable (String, AccountRecord) async throws -> Void,
        nodes: NodeRepository, logger: Logger
    ) {
        self.nodes = nodes
        self.lifecycle = lifecycle
        self.templateAccess = templateAccess
        self.metrics = metrics
        self.samples = samples
        self.runtime = runtime
        self.repository = repository
        self.accounts = accounts
        self.gateway = gateway
        self.network = network
        self.configuration = configuration
        self.logger = logger
    }

    /// Tells the lifecycle's subscribers what happened to a sandbox.
    package func publish(_ kind: SandboxLifecycleEvent.Kind, _ record: SandboxRecord, reason: String? = nil) async {
        guard let id = SandboxID(record.id) else { return }
        await lifecycle.publish(SandboxLifecycleEvent(kind: kind, sandboxID: id, record: record, reason: reason))
    }

    // MARK: create, find, list, kill

    package func create(_ request: CreateSandboxRequest, account: AccountRecord) async throws -> SandboxRecord {
        try await templateAccess(request.template, account)
        let image = try runtime.catalog.image(for: request.template)
        // Admission: the node's capacity, then the account's limit across every node
        // (a place held in the store until the sandbox is recorded as running).
        try checkTakesSandboxes()
        let nodeRunning = await runtime.running.count
        guard nodeRunning + pendingTotal < configuration.maxSandboxes else {
            throw OmniRunError(.unavailable, "this node is full (\(configuration.maxSandboxes) sandboxes)")
        }
        pending[account.id, default: 0] += 1
        pendingTotal += 1
        defer {
            pending[account.id, default: 1] -= 1
            pendingTotal -= 1
        }
        let place = try await admit(account, count: 1)
        do {
            let record = try await createAdmitted(request, image: image, account: account)
            await release(place)
            return record
        } catch {
            await release(place)
            throw error
        }
    }

    private func createAdmitted(_ request: CreateSandboxRequest, image: MachineImage, account: AccountRecord) async throws -> SandboxRecord {
        let sandbox: Sandbox
        let started = ContinuousClock.now
        do {
            // The LLM proxy's address first, so that the caller's own variables win.
            let userProvided = request.env.merging(request.vaultVariables ?? [:]) { $1 }
            let env = LLMSandboxEnvironment.variables(userProvided: userProvided).merging(request.env) { $1 }
            sandbox = try await runtime.create(
                SandboxSpec(
                    template: request.template, env: env, defaultUser: "user", envFileVars: request.vaultVariables,
                    internet: request.internet, egress: request.egress, screenSize: request.screenSize))
        } catch let error as OmniRunError where error.code == .notFound || error.code == .invalidArgument {
            throw error
        } catch {
            // Nothing is left running: the runtime destroyed the machine. A retry is safe.
            metrics.increment("omnirun_sandbox_create_failures_total")
            throw OmniRunError(.unavailable, "the sandbox failed to start: \(error)")
        }
        let record = runningRecord(
            sandbox, accountID: account.id, template: request.template, timeoutSeconds: request.timeoutSeconds,
            metadata: request.metadata, env: request.env, vaultInject: request.vaultInject, cpuCount: image.vcpus,
            memoryMB: image.memoryMB, autoPause: request.autoPause)
        do {
            try await repository.insert(record)
        } catch {
            await runtime.destroy(sandbox.id)
            throw error
        }
        recordCache[sandbox.id] = record
        metrics.increment("omnirun_sandboxes_created_total")
        await publish(.created, record)
        metrics.observe("omnirun_sandbox_create_seconds", seconds: ServerMetrics.seconds(ContinuousClock.now - started))
        await gateway.start(sandbox, owner: account, onRequest: activity(sandbox.id))
        logger.info("sandbox created", metadata: ["sandbox": "\(sandbox.id)", "account": "\(account.id)", "template": "\(request.template)"])
        return record
    }

    /// A running sandbox of this account; everything else (ended, another account's) is 404.
    package func record(_ id: String, account: AccountRecord?) async throws -> SandboxRecord {
        guard let sandboxID = SandboxID(id) else { throw notFound(id) }
        let record: SandboxRecord
        if let cached = recordCache[sandboxID] {
            record = cached
        } else if let stored = try await repository.find(id: id), stored.state.isLive {
            record = stored
        } else {
            throw notFound(id)
        }
        if let account, record.accountID != account.id { throw notFound(id) }
        return record
    }

    /// A sandbox of this account, running or ended (what an ended one left can be read).
    package func anyRecord(_ id: String, account: AccountRecord) async throws -> SandboxRecord {
        guard SandboxID(id) != nil, let stored = try await repository.find(id: id), stored.accountID == account.id else {
            throw notFound(id)
        }
        return stored
    }

    /// The live sandbox behind a record; touching it counts as activity. A paused
    /// sandbox (or one being paused or resumed) is a 409 that says what to do.
    package func sandbox(_ id: String, account: AccountRecord?) async throws -> Sandbox {
        let record = try await record(id, account: account)
        guard let sandboxID = SandboxID(record.id) else { throw notFound(id) }
        if let busy = transitions[sandboxID], busy.kind != .kill {
            throw OmniRunError(.conflict, "sandbox \(id) is being \(busy.kind.pastParticiple); try again once it is done")
        }
        if record.state == .paused {
            throw OmniRunError(.conflict, "sandbox \(id) is paused: resume it first (POST /sandboxes/\(id)/resume)")
        }
        guard let sandbox = await runtime.sandbox(sandboxID) else { throw notFound(id) }
        activity[sandboxID] = nowMillis()
        return sandbox
    }

    package func touch(_ id: SandboxID) {
        activity[id] = nowMillis()
    }

    /// Counts a sandbox's own calls through its host gateway as activity (idle kill).
    package func activity(_ id: SandboxID) -> @Sendable () async -> Void {
        { [weak self] in await self?.touch(id) }
    }

    package func list(account: AccountRecord) async throws -> [SandboxRecord] {
        try await repository.live(accountID: account.id)
    }

    package func history(account: AccountRecord, limit: Int, before: Int64?, offset: Int = 0) async throws -> [SandboxRecord] {
        try await repository.ended(accountID: account.id, limit: limit, before: before, offset: offset)
    }

    package func kill(_ id: String, account: AccountRecord) async throws {
        let record = try await record(id, account: account)
        guard let sandboxID = SandboxID(record.id) else { throw notFound(id) }
        try await exclusive(sandboxID, kind: .kill) {
            // A pause or resume that came first has finished; the sandbox may be gone.
            guard let current = try await self.current(sandboxID) else { throw self.notFound(id) }
            try await self.end(current, reason: .killed)
        }
    }

    package func setTimeout(_ id: String, seconds: Int64, account: AccountRecord) async throws {
        guard seconds >= 0, seconds <= 30 * 24 * 3600 else {
            throw OmniRunError(.invalidArgument, "timeout must be between 0 (permanent) and 2592000 seconds")
        }
        var record = try await record(id, account: account)
        record.timeoutSeconds = seconds
        record.expiresAt = seconds > 0 ? nowMillis() + seconds * 1000 : nil
        try await repository.setExpiry(id: id, timeoutSeconds: seconds, expiresAt: record.expiresAt)
        if let sandboxID = SandboxID(id) {
            recordCache[sandboxID] = record
            activity[sandboxID] = nowMillis()
        }
    }

    package func end(_ record: SandboxRecord, reason: EndReason) async throws {
        guard let sandboxID = SandboxID(record.id) else { return }
        try await repository.markEnded(id: record.id, reason: reason, at: nowMillis())
        recordCache[sandboxID] = nil
        activity[sandboxID] = nil
        await gateway.stop(sandboxID)
        await runtime.destroy(sandboxID)
        await publish(.ended(reason), record)
        // A paused sandbox has no machine: its folder (saved state, disk) goes.
        runtime.deletePaused(sandboxID)
        try? await samples.delete(sandboxID: record.id)
        metrics.increment("omnirun_sandboxes_ended_total{reason=\"\(reason.kind)\"}")
        logger.info("sandbox ended", metadata: ["sandbox": "\(record.id)", "reason": "\(reason)"])
    }

    /// Called when a machine dies behind our back.
    package func machineStopped(_ id: SandboxID, exit: MachineExit) async {
        let reason = EndReason.failed("\(exit)")
        let record = recordCache[id]
        await gateway.stop(id)
        recordCache[id] = nil
        activity[id] = nil
        try? await repository.markEnded(id: id.rawValue, reason: reason, at: nowMillis())
        await lifecycle.publish(SandboxLifecycleEvent(kind: .ended(reason), sandboxID: id, record: record))
        try? await samples.delete(sandboxID: id.rawValue)
        metrics.increment("omnirun_sandboxes_ended_total{reason=\"failed\"}")
    }

    package func runningCount() async -> Int { await runtime.running.count }

    package nonisolated func notFound(_ id: String) -> OmniRunError {
        OmniRunError(.notFound, "sandbox \(id) not found")
    }

    // MARK: timeouts and idleness

    /// Ends sandboxes past their timeout or idle too long; flushes activity.
    package func reap() async {
        let now = nowMillis()
        guard let running = try? await repository.running(node: configuration.nodeID) else { return }
        for var record in running {
            guard let id = SandboxID(record.id), transitions[id] == nil else { continue }
            if let seen = activity[id], seen > record.lastActivityAt {
                record.lastActivityAt = seen
                try? await repository.touch(id: record.id, at: seen)
                if recordCache[id] != nil { recordCache[id]?.lastActivityAt = seen }
            }
            if let expires = record.expiresAt, expires <= now {
                await expire(record, reason: .timeout)
                continue
            }
            let idleLimit = configuration.idleTimeoutSeconds * 1000
            if !record.vaultInject, idleLimit > 0, now - record.lastActivityAt > idleLimit {
                await expire(record, reason: .idle)
            }
        }
        await deletePausedPastRetention(now: now)
    }

    // MARK: recovery

    /// After a start: re-attach to the machines that still run, keep the paused ones
    /// (their folders hold everything), record the rest as ended, and remove any
    /// machine folder nobody owns. Re-attaches run side by side: a guest that stalls its
    /// agent costs the start one agent timeout, not one per sandbox.
    package func recover() async {
        guard let live = try? await repository.live() else { return }
        let mine = live.filter { $0.nodeID == nil || $0.nodeID == configuration.nodeID }
        let runtime = self.runtime
        var attached: [SandboxID: Result<Sandbox, any Error>] = [:]
        await withTaskGroup(of: (SandboxID, Result<Sandbox, any Error>).self) { group in
            for record in mine where record.state == .running {
                guard let id = SandboxID(record.id), let pid = record.machinePID else { continue }
                let template = record.template
                group.addTask {
                    do {
                        return (id, .success(try await runtime.reattach(id: id, template: template, pid: pid)))
                    } catch {
                        return (id, .failure(error))
                    }
                }
            }
            for await (id, result) in group { attached[id] = result }
        }
        var kept: Set<SandboxID> = []
        for var record in mine {
            guard let id = SandboxID(record.id) else { continue }
            if let result = attached[id] {
                do {
                    let sandbox = try result.get()
                    kept.insert(id)
                    recordCache[id] = record
                    // A resume recorded just before the crash: its saved state is spent.
                    runtime.discardPausedState(id)
                    if let owner = try? await accounts.find(id: record.accountID) {
                        await gateway.start(sandbox, owner: owner, onRequest: activity(sandbox.id))
                    }
                    continue
                } catch {
                    logger.warning("sandbox lost across the restart", metadata: ["sandbox": "\(id)", "error": "\(error)"])
                }
            }
            // Paused (or paused just before the crash, before the store heard of it).
            if runtime.pausedMachine(id) != nil {
                if record.state != .paused {
                    let bytes = SandboxRuntime.diskUsage(of: runtime.machineDirectory(of: id))
                    try? await repository.markPaused(id: record.id, at: nowMillis(), bytes: bytes)
                    record.state = .paused
                    record.pausedBytes = bytes
                }
                kept.insert(id)
                recordCache[id] = record
                continue
            }
            try? await repository.markEnded(id: record.id, reason: .lost, at: nowMillis())
        }
        await runtime.removeOrphans(keeping: kept)
    }
}

extension SandboxService {
    /// The store's record of a sandbox that has just started running on this node (created
    /// or forked): its timeout counts from now.
    package func runningRecord(
        _ sandbox: Sandbox, accountID: String, template: String, timeoutSeconds: Int64, metadata: [String: String],
        env: [String: String], vaultInject: Bool, cpuCount: Int, memoryMB: Int, autoPause: Bool
    ) -> SandboxRecord {
        let now = nowMillis()
        return SandboxRecord(
            id: sandbox.id.rawValue, accountID: accountID, template: template, state: .running, createdAt: now,
            timeoutSeconds: timeoutSeconds, expiresAt: timeoutSeconds > 0 ? now + timeoutSeconds * 1000 : nil,
            lastActivityAt: now, metadata: metadata, env: env, vaultInject: vaultInject, cpuCount: cpuCount,
            memoryMB: memoryMB, machineDirectory: sandbox.machine.directory, machinePID: sandbox.machine.processID,
            nodeID: configuration.nodeID, autoPause: autoPause, region: configuration.region)
    }
}
