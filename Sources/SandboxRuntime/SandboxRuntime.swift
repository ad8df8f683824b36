import AgentClient
import AgentProtocol
import Foundation
import Logging
import OmniRunCore
import OmniRunError

/// The sandboxes of one node: creates them (restoring the template's snapshot),
/// tracks them, notices machines that die, and destroys them without leftovers.
public actor SandboxRuntime {
    public struct Configuration: Sendable {
        /// Where snapshots and per-sandbox files live.
        public var dataDirectory: String
        /// Where template snapshots are kept (`OMNIRUN_SNAPSHOT_DIR`; default `<data>/snapshots`).
        /// Several servers on one machine may share it: builds are locked per snapshot.
        public var snapshotDirectory: String?
        public var agentTimeout: Duration = .seconds(30)
        /// Creates that run at once; more wait their turn (0: twice the host's cores).
        public var maxConcurrentCreates: Int = 0
        /// Restored, exercised machines kept ready per template (`OMNIRUN_WARM_POOL`): a fixed
        /// number (0 disables) or following demand (`WarmPoolPolicy.auto`).
        public var warmPool: WarmPoolPolicy = .fixed(0)
        /// A fixed pool of this many machines per template.
        public var warmPoolSize: Int {
            get { warmPool.maximum }
            set { warmPool = .fixed(newValue) }
        }
        /// How long a create that finds the pool empty waits for a machine being restored
        /// for it (sooner, and already exercised) before restoring one of its own.
        public var warmPoolMissWait: Duration = .seconds(10)
        /// A restored machine's identity travels in the first exchange with its agent
        /// instead of after a health check (`OMNIRUN_RESTORE_PATH=previous`: after).
        public var identityInFirstExchange = true
        /// How long a refill waits after a create took a pooled machine, so that the
        /// new sandbox's first calls do not share the CPU with a restore.
        public var warmPoolRefillDelay: Duration = .milliseconds(300)
        /// Commands run once in a template before its snapshot (warms the page cache) when
        /// its manifest names none (`WARMUP` in its template.env).
        public var warmUp: [String: [String]] = ["playground": ["python3 -c pass", "node -e 0"]]
        /// Internet access (nil: the defaults for this data directory).
        public var network: HostNetwork.Configuration?

        public init(dataDirectory: String) {
            self.dataDirectory = dataDirectory
        }

        /// `$OMNIRUN_DATA_DIR`, else `$HOME/.local/share/omnirun`.
        public static func defaultDataDirectory(environment env: [String: String]) -> String {
            if let dir = env["OMNIRUN_DATA_DIR"], !dir.isEmpty { return dir }
            return (env["HOME"] ?? "/root") + "/.local/share/omnirun"
        }
    }

    public nonisolated let driver: any MachineDriver
    public nonisolated let catalog: ImageCatalog
    public nonisolated let configuration: Configuration
    /// Namespaces, devices and firewalls of sandboxes with internet access.
    public nonisolated let network: HostNetwork
    let snapshots: SnapshotStore
    let logger: Logger
    var sandboxes: [SandboxID: Sandbox] = [:]
    /// Template build machines (`SandboxRuntime+BuildMachines.swift`).
    var buildMachines: [String: any MachineInstance] = [:]
    /// The network namespaces of build machines that have one, by machine name.
    var buildNetworks: [String: SandboxID] = [:]
    var failures: [SandboxID: MachineExit] = [:]
    /// Sandboxes being torn down after a failure (`fail`).
    var failing: Set<SandboxID> = []
    private var exitHandlers: [@Sendable (SandboxID, MachineExit) async -> Void] = []
    let createLimiter: AsyncLimiter
    let pool: WarmPool

    public init(driver: any MachineDriver, catalog: ImageCatalog, configuration: Configuration, logger: Logger) {
        self.driver = driver
        self.catalog = catalog
        self.configuration = configuration
        self.logger = logger
        let cores = Foundation.ProcessInfo.processInfo.activeProcessorCount
        self.createLimiter = AsyncLimiter(
            limit: configuration.maxConcurrentCreates > 0 ? configuration.maxConcurrentCreates : 2 * cores)
        self.pool = WarmPool(policy: configuration.warmPool, refillDelay: configuration.warmPoolRefillDelay, logger: logger)
        self.network = HostNetwork(
            configuration: configuration.network ?? HostNetwork.Configuration(dataDirectory: configuration.dataDirectory),
            logger: logger)
        self.snapshots = SnapshotStore(
            driver: driver, directory: configuration.snapshotDirectory ?? configuration.dataDirectory + "/snapshots",
            logger: logger)
    }

    /// Called when a sandbox's machine stops without being asked to.
    public func onUnexpectedExit(_ handler: @escaping @Sendable (SandboxID, MachineExit) async -> Void) {
        exitHandlers.append(handler)
    }

    /// Builds (or finds) the template's snapshot.
    @discardableResult
    public func prepare(template: String) async throws -> MachineSnapshot {
        let built = try catalog.template(named: template)
        let snapshot = try await snapshots.snapshot(for: built.image, setup: setup(of: built))
        await refillPool(snapshot, pinned: true)
        return snapshot
    }

    /// Takes the snapshot of a template that is not in the catalog yet (a custom template's
    /// new version: it is published only once its snapshot exists).
    @discardableResult
    public func prepare(_ template: TemplateImage) async throws -> MachineSnapshot {
        try await snapshots.snapshot(for: template.image, setup: setup(of: template))
    }

    /// What runs before a template's snapshot: its manifest's, or else the configured warm-up.
    func setup(of built: TemplateImage) -> TemplateSetup {
        var setup = built.setup
        if setup.warmUp.isEmpty { setup.warmUp = configuration.warmUp[built.image.template] ?? [] }
        return setup
    }

    /// Whether a template's snapshot exists (`building` while this runtime takes it).
    public func snapshotState(of template: String) async -> SnapshotState {
        guard let built = try? catalog.template(named: template) else { return .missing }
        let setup = setup(of: built)
        if await snapshots.existing(for: built.image, setup: setup) != nil { return .ready }
        return await snapshots.isBuilding(built.image, setup: setup) ? .building : .missing
    }

    /// Machines waiting in the warm pool for a template.
    public func pooled(_ template: String) async -> Int {
        await pool.count(catalog.resolve(template))
    }

    /// The machines waiting in the pool of a template (for inspection).
    public func pooledMachines(_ template: String) async -> [any MachineInstance] {
        await pool.machines(catalog.resolve(template))
    }

    /// What the warm pool holds and wants for a template: ready, target, being restored,
    /// creates it served and creates that found it empty.
    public func poolFigures(_ template: String) async -> (ready: Int, target: Int, restoring: Int, takes: Int, misses: Int)? {
        guard let figures = await pool.figures(catalog.resolve(template)) else { return nil }
        return (figures.ready, figures.target, figures.restoring, figures.takes, figures.misses)
    }

    /// Waits until the warm pool of a template holds its target (benchmarks, tests).
    public func waitForPool(_ template: String, timeout: Duration = .seconds(120)) async {
        let name = catalog.resolve(template)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, await pool.count(name) < pool.target(name) {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Lets a shrinking pool act now (tests).
    package func shrinkPool(asIf now: ContinuousClock.Instant) async { await pool.shrink(now: now) }

    /// Gives the pool the way to restore machines of this snapshot's template.
    private func refillPool(_ snapshot: MachineSnapshot, pinned: Bool = false) async {
        guard pool.policy.isEnabled else { return }
        let driver = self.driver
        let directory = configuration.dataDirectory
        let timeout = configuration.agentTimeout
        let logger = self.logger
        let limiter = createLimiter
        let pool = self.pool
        await pool.register(snapshot.image.template, pinned: pinned) {
                try await limiter.run {
                    let id = SandboxID.random()
                    await pool.beginRestore(id)
                    defer { Task { await pool.endRestore(id) } }
                    let machine = try await driver.restore(
                        snapshot: snapshot,
                        options: MachineOptions(name: id.rawValue, directory: directory + "/sandboxes/\(id)"))
                    // Waiting machines yield the CPU to sandboxes in use.
                    machine.setPriority(10)
                    do {
                        let starvedBefore = machine.starvation()
                        let agent = try await GuestAgentClient.connect(
                            socketPath: machine.agentSocketPath, name: "sandbox \(id)", timeout: timeout, logger: logger,
                            starvedFor: { machine.starvation() - starvedBefore },
                            giveUpIf: { await machine.state.isTerminal ? "\(await machine.state)" : nil })
                        try await WarmPool.exercise(agent)
                        // Waiting machines use no CPU at all.
                        try await machine.stopCPUs()
                        return WarmPool.Entry(id: id, machine: machine, agent: agent)
                    } catch {
                        await machine.destroy()
                        throw error
                    }
                }
        }
    }

    public func create(_ spec: SandboxSpec) async throws -> Sandbox {
        let built = try catalog.template(named: spec.template)
        let image = built.image
        if spec.internet {
            try await prepareNetwork(spec, built: built)
        } else if !spec.coldBoot {
            // Build the snapshot outside the limiter: it may take a while and is shared.
            let snapshot = try await snapshots.snapshot(for: image, setup: setup(of: built))
            await refillPool(snapshot)
            // A screen of another size is set before the create answers: not from the pool.
            if spec.id == nil, spec.screenSize == nil,
                let entry = await pool.take(image.template, wait: configuration.warmPoolMissWait)
            {
                return adopt(entry, spec: spec, built: built, started: ContinuousClock.now)
            }
        }
        return try await createLimiter.run {
            do {
                return try await self.createAdmitted(spec, built: built, agentTimeout: spec.coldBoot ? nil : .seconds(12))
            } catch let error as OmniRunError where error.code == .timeout && !spec.coldBoot {
                // Rarely (2 in ~300 restores under heavy load) a restored guest's agent
                // never answers; the cause is not found yet. A restore is cheap: one more.
                self.logger.warning(
                    "a restored machine did not answer; restoring another", metadata: ["template": "\(image.template)"])
                return try await self.createAdmitted(spec, built: built, agentTimeout: nil)
            }
        }
    }

    /// Gives a pooled machine its sandbox identity, lazily: the create is answered at
    /// once, and the machine's CPUs are let go and its identity call sent when the first
    /// call reaches its agent (`admit(after:)`), which waits for it. A burst of creates
    /// therefore does not compete with the guests it wakes, and nothing of the user's
    /// runs before the identity is in place.
    private func adopt(_ entry: WarmPool.Entry, spec: SandboxSpec, built: TemplateImage, started: ContinuousClock.Instant)
        -> Sandbox
    {
        let image = built.image
        let sandbox = Sandbox(id: entry.id, template: image.template, machine: entry.machine, agent: entry.agent)
        let logger = self.logger
        entry.agent.admit { [weak self] in
            do {
                try await entry.machine.continueCPUs()
                entry.machine.setPriority(0)
                try await Self.initialize(entry.agent, id: entry.id, spec: spec, defaults: built.defaults)
            } catch {
                // Destroyed before it had its identity: nothing went wrong.
                if await self?.sandbox(entry.id) != nil {
                    logger.error(
                        "a pooled machine did not take its identity", metadata: ["sandbox": "\(entry.id)", "error": "\(error)"])
                    await entry.machine.destroy()
                }
                throw error
            }
            logger.info(
                "sandbox created from the warm pool",
                metadata: ["sandbox": "\(entry.id)", "template": "\(image.template)", "init": "\(ContinuousClock.now - started)"])
        }
        sandboxes[entry.id] = sandbox
        watch(sandbox)
        // Unused, it takes its identity soon anyway (a sandbox must be whole even if
        // nobody calls it before a server restart).
        Task {
            try? await Task.sleep(for: .milliseconds(500))
            entry.agent.startAdmission()
        }
        return sandbox
    }

    /// The sandbox's identity, with its template's ENV (under the caller's), USER and WORKDIR.
    static func initialize(
        _ agent: GuestAgentClient, id: SandboxID, spec: SandboxSpec, defaults: TemplateDefaults
    ) async throws {
        _ = try await agent.initialize(identity(id: id, spec: spec, defaults: defaults))
    }

    static func identity(id: SandboxID, spec: SandboxSpec, defaults: TemplateDefaults) -> InitRequest {
        InitRequest(
            sandboxID: id.rawValue, hostname: id.hostname, env: defaults.env.merging(spec.env) { _, given in given },
            unixTimeNanos: Int64(Date().timeIntervalSince1970 * 1_000_000_000), entropy: hostEntropy(),
            defaultUser: defaults.user ?? spec.defaultUser, envFile: spec.envFileVars == nil ? nil : spec.envFilePath,
            envFileVars: spec.envFileVars, defaultCwd: defaults.workdir)
    }

    private func createAdmitted(_ spec: SandboxSpec, built: TemplateImage, agentTimeout: Duration?) async throws -> Sandbox {
        let image = built.image
        let id = spec.id ?? SandboxID.random()
        guard sandboxes[id] == nil else { throw OmniRunError(.alreadyExists, "sandbox \(id) exists") }
        let options = MachineOptions(name: id.rawValue, directory: configuration.dataDirectory + "/sandboxes/\(id)")
        let started = ContinuousClock.now
        let machine: any MachineInstance
        if spec.coldBoot {
            machine = try await driver.boot(image: image, options: options, snapshotable: false)
        } else if spec.internet {
            machine = try await restoreWithNetwork(spec, built: built, options: options)
        } else {
            let snapshot = try await snapshots.snapshot(for: image, setup: setup(of: built))
            machine = try await driver.restore(snapshot: snapshot, options: options)
        }
        let machineReady = ContinuousClock.now
        do {
            let starvedBefore = machine.starvation()
            // A restored guest gets its identity in the first exchange.
            let defaults = built.defaults
            var identity: (@Sendable () -> InitRequest)? = nil
            if !spec.coldBoot, configuration.identityInFirstExchange {
                identity = { @Sendable in Self.identity(id: id, spec: spec, defaults: defaults) }
            }
            let agent = try await GuestAgentClient.connect(
                socketPath: machine.agentSocketPath, name: "sandbox \(id)",
                timeout: spec.coldBoot ? .seconds(120) : agentTimeout ?? configuration.agentTimeout, logger: logger,
                starvedFor: { machine.starvation() - starvedBefore },
                giveUpIf: { await machine.state.isTerminal ? "\(await machine.state)" : nil }, identity: identity)
            let agentReady = ContinuousClock.now
            if identity == nil { try await Self.initialize(agent, id: id, spec: spec, defaults: built.defaults) }
            if let size = spec.screenSize { try await Self.setScreen(agent, id: id, size: size, logger: logger) }
            let sandbox = Sandbox(id: id, template: image.template, machine: machine, agent: agent)
            sandboxes[id] = sandbox
            watch(sandbox)
            logger.info(
                "sandbox created",
                metadata: [
                    "sandbox": "\(id)", "template": "\(image.template)", "machine": "\(machineReady - started)",
                    "agent": "\(agentReady - machineReady)", "init": "\(ContinuousClock.now - agentReady)",
                ])
            return sandbox
        } catch {
            let console = await machine.consoleTail(maxBytes: 6000)
            let diagnostics = await machine.diagnostics()
            await machine.destroy()
            if spec.internet { await network.tearDown(id) }
            logger.error(
                "sandbox failed to start", metadata: ["sandbox": "\(id)", "error": "\(error)", "machine": "\(diagnostics)"])
            if let error = error as? OmniRunError, error.code == .timeout {
                throw OmniRunError(.timeout, "sandbox \(id) did not come up: \(error.message)\n--- console ---\n\(console)")
            }
            throw OmniRunError(.machineFailed, "sandbox \(id) did not come up: \(error)\n--- console ---\n\(console)")
        }
    }

    /// Notices the sandbox's machine stopping, and its agent breaking the protocol: a
    /// guest that lies is stopped and reported like one whose machine died.
    func watch(_ sandbox: Sandbox) {
        Task { [weak self] in
            let exit = await sandbox.machine.waitForExit()
            await self?.machineExited(sandbox, exit)
        }
        // Weak: the agent keeps this handler for as long as it lives.
        sandbox.agent.onProtocolViolation { [weak self, weak sandbox] reason in
            guard let sandbox else { return }
            Task { await self?.agentViolated(sandbox, reason) }
        }
    }

    private func machineExited(_ stopped: Sandbox, _ exit: MachineExit) async {
        // A paused sandbox's machine stops on purpose (and a resumed one is another machine).
        guard let sandbox = sandboxes[stopped.id], sandbox === stopped else { return }
        logger.warning("sandbox machine stopped", metadata: ["sandbox": "\(sandbox.id)", "exit": "\(exit)"])
        await fail(sandbox, exit)
    }

    private func agentViolated(_ violator: Sandbox, _ reason: String) async {
        guard let sandbox = sandboxes[violator.id], sandbox === violator else { return }
        logger.error(
            "a sandbox's agent broke the protocol; its machine is stopped", metadata: ["sandbox": "\(sandbox.id)", "reason": "\(reason)"])
        await fail(sandbox, .agentViolation(reason))
    }

    /// Ends a sandbox that stopped or was stopped without being asked to, and tells the
    /// exit handlers, once (its machine stopping and its agent lying may both report it).
    /// It leaves the table once its machine and files are gone.
    private func fail(_ sandbox: Sandbox, _ exit: MachineExit) async {
        let id = sandbox.id
        guard failing.insert(id).inserted else { return }
        await sandbox.agent.close()
        await sandbox.machine.destroy()
        await network.tearDown(id)
        failures[id] = exit
        if sandboxes[id] === sandbox { sandboxes[id] = nil }
        failing.remove(id)
        for handler in exitHandlers { await handler(id, exit) }
    }

    public func sandbox(_ id: SandboxID) -> Sandbox? { sandboxes[id] }

    /// How a sandbox that is gone ended, if it did so on its own.
    public func failure(of id: SandboxID) -> MachineExit? { failures[id] }

    public var running: [Sandbox] { sandboxes.values.sorted { $0.id < $1.id } }

    public func destroy(_ id: SandboxID) async {
        guard let sandbox = sandboxes.removeValue(forKey: id) else { return }
        await sandbox.agent.close()
        await sandbox.machine.destroy()
        await network.tearDown(id)
        logger.info("sandbox destroyed", metadata: ["sandbox": "\(id)"])
    }

    /// Destroys the pooled machines (sandboxes keep running, for the next start to re-attach).
    public func drainPool() async {
        await pool.drain()
    }

    /// Destroys every sandbox, every pooled machine and every build machine.
    public func destroyAll() async {
        await pool.drain()
        for id in Array(sandboxes.keys) { await destroy(id) }
        await destroyBuildMachines()
    }
}
