import AgentClient
import AgentProtocol
import Foundation
import Logging
import OmniRunCore

/// Restored machines whose agents are connected and already exercised, waiting to
/// become sandboxes. Under emulation a freshly restored guest runs every code path
/// for the first time through the translator, which costs far more than the restore
/// itself; a pooled machine has done that already, so a create is only the identity
/// call. Trades memory (one idle guest each) for latency; `WarmPoolPolicy` says how
/// many per template, fixed or following demand.
actor WarmPool {
    struct Entry: Sendable {
        let id: SandboxID
        let machine: any MachineInstance
        let agent: GuestAgentClient
    }

    typealias Maker = @Sendable () async throws -> Entry

    /// One template's machines and what it wants.
    private struct Shelf {
        var ready: [Entry] = []
        var target: Int
        var restoring = 0
        /// Creates that found the shelf empty and wait for a machine being restored.
        var waiters: [(ticket: UInt64, continuation: CheckedContinuation<Entry?, Never>)] = []
        var lastDemand: ContinuousClock.Instant
        var lastShrink: ContinuousClock.Instant
        /// Prepared at start: kept at the minimum however long it is unused.
        var pinned = false
        var make: Maker?
        var failures = 0
        var pausedUntil: ContinuousClock.Instant?
        var takes = 0
        var misses = 0
        var lastTake: ContinuousClock.Instant?
    }

    /// What the pool holds and wants for one template (status, benchmarks, tests).
    struct Figures: Sendable, Equatable {
        var ready: Int
        var target: Int
        var restoring: Int
        var takes: Int
        var misses: Int
    }

    let policy: WarmPoolPolicy
    private let refillDelay: Duration
    private let logger: Logger
    private var shelves: [String: Shelf] = [:]
    private var restoringTotal = 0
    private var tasks: [UInt64: Task<Void, Never>] = [:]
    private var nextTicket: UInt64 = 0
    private var closed = false
    private var shrinker: Task<Void, Never>?
    /// A pooled machine's memory as measured (PSS, MiB; a running mean).
    private var measuredMiB: Double?
    /// Machines being restored for the pool right now (their folders are not orphans).
    private var restoringIDs: Set<SandboxID> = []

    init(policy: WarmPoolPolicy, refillDelay: Duration, logger: Logger) {
        self.policy = policy
        self.refillDelay = refillDelay
        self.logger = logger
    }

    var isEnabled: Bool { policy.isEnabled }

    /// Makes a template's shelf known (or gives it a new maker: a new snapshot) and tops it up.
    func register(_ template: String, pinned: Bool = false, make: @escaping Maker) {
        guard policy.isEnabled, !closed else { return }
        let now = ContinuousClock.now
        var shelf = shelves[template] ?? Shelf(target: policy.minimum, lastDemand: now, lastShrink: now)
        shelf.make = make
        shelf.pinned = shelf.pinned || pinned
        if shelf.target == 0, policy.minimum > 0 { shelf.target = policy.minimum }
        shelves[template] = shelf
        if policy.adaptive, shrinker == nil { startShrinking() }
        pump()
    }

    /// A ready machine of the template, else (when one is being restored for the pool and
    /// not promised to an earlier create) the next one to arrive within `wait`, else nil.
    func take(_ template: String, wait: Duration = .zero) async -> Entry? {
        guard policy.isEnabled, !closed, shelves[template] != nil else { return nil }
        let now = ContinuousClock.now
        shelves[template]?.lastDemand = now
        // Creates close together: the next one must not find the shelf empty.
        let pressed = shelves[template]?.lastTake.map { now - $0 < .seconds(2) } ?? false
        while let entry = shelves[template]?.ready.first {
            shelves[template]?.ready.removeFirst()
            guard await entry.machine.state == .running, entry.agent.isConnected else {
                await discard(entry)
                continue
            }
            shelves[template]?.takes += 1
            shelves[template]?.lastTake = now
            if shelves[template]?.ready.isEmpty == true, pressed {
                // Creates arrive faster than the shelf refills.
                grow(template, to: { $0 + 1 })
                pump()
            } else {
                // The new sandbox's first calls do not share the CPU with a restore.
                let delay = refillDelay
                Task { [weak self] in
                    try? await Task.sleep(for: delay)
                    await self?.pump()
                }
            }
            return entry
        }
        shelves[template]?.misses += 1
        grow(template, to: { max($0 + 1, $0 * 2) })
        pump()
        guard wait > .zero, let shelf = shelves[template], shelf.restoring > shelf.waiters.count else { return nil }
        nextTicket &+= 1
        let ticket = nextTicket
        return await withCheckedContinuation { continuation in
            shelves[template]?.waiters.append((ticket, continuation))
            Task { [weak self] in
                try? await Task.sleep(for: wait)
                await self?.expire(template, ticket)
            }
        }
    }

    func count(_ template: String) -> Int { shelves[template]?.ready.count ?? 0 }

    func figures(_ template: String) -> Figures? {
        shelves[template].map {
            Figures(ready: $0.ready.count, target: $0.target, restoring: $0.restoring, takes: $0.takes, misses: $0.misses)
        }
    }

    func target(_ template: String) -> Int { shelves[template]?.target ?? policy.minimum }

    func machines(_ template: String) -> [any MachineInstance] { shelves[template]?.ready.map(\.machine) ?? [] }

    func beginRestore(_ id: SandboxID) { restoringIDs.insert(id) }
    func endRestore(_ id: SandboxID) { restoringIDs.remove(id) }

    /// Whether a machine folder belongs to the pool (ready or being restored).
    func owns(_ id: SandboxID) -> Bool {
        restoringIDs.contains(id) || shelves.values.contains { $0.ready.contains { $0.id == id } }
    }

    /// Destroys every pooled machine and stops refilling.
    func drain() async {
        closed = true
        shrinker?.cancel()
        shrinker = nil
        for template in Array(shelves.keys) {
            for waiter in shelves[template]?.waiters ?? [] { waiter.continuation.resume(returning: nil) }
            shelves[template]?.waiters.removeAll()
        }
        // A machine being restored right now is destroyed when it arrives: wait for it,
        // so that nothing outlives the drain.
        while let task = tasks.values.first { await task.value }
        let all = shelves.values.flatMap(\.ready)
        for template in Array(shelves.keys) { shelves[template]?.ready.removeAll() }
        for entry in all { await discard(entry) }
    }

    // MARK: - Sizing

    /// Pooled machines the memory budget allows, all templates together.
    private var budgetMachines: Int {
        guard policy.memoryBudgetMiB < Int.max else { return Int.max }
        let each = max(1, measuredMiB ?? Double(policy.machineMiB))
        return Int(clamping: Int64((Double(policy.memoryBudgetMiB) / each).rounded(.down)))
    }

    private var pooledTotal: Int { shelves.values.reduce(0) { $0 + $1.ready.count + $1.restoring } }

    private func grow(_ template: String, to next: (Int) -> Int) {
        guard policy.adaptive, let shelf = shelves[template] else { return }
        let grown = min(policy.maximum, max(shelf.target, next(shelf.target)))
        guard grown != shelf.target else { return }
        shelves[template]?.target = grown
        logger.debug("warm pool grows", metadata: ["template": "\(template)", "target": "\(grown)"])
    }

    /// Starts restores while a shelf is below its target (plus its waiters), up to the
    /// pool's parallelism and its memory budget.
    private func pump() {
        guard !closed else { return }
        let now = ContinuousClock.now
        var started = true
        while started, restoringTotal < policy.parallelism, pooledTotal < budgetMachines {
            started = false
            // The shelf furthest below its target first.
            let wanting = shelves.filter { _, shelf in
                shelf.make != nil && (shelf.pausedUntil.map { $0 <= now } ?? true)
                    && shelf.ready.count + shelf.restoring < shelf.target + shelf.waiters.count
            }
            guard let (template, shelf) = wanting.min(by: {
                $0.value.ready.count + $0.value.restoring - $0.value.target
                    < $1.value.ready.count + $1.value.restoring - $1.value.target
            }), let make = shelf.make
            else { break }
            launch(template, make)
            started = true
        }
    }

    private func launch(_ template: String, _ make: @escaping Maker) {
        nextTicket &+= 1
        let key = nextTicket
        shelves[template]?.restoring += 1
        restoringTotal += 1
        tasks[key] = Task { [weak self] in
            let result: Result<Entry, any Error>
            do { result = .success(try await make()) } catch { result = .failure(error) }
            await self?.finished(template, key: key, result)
        }
    }

    private func finished(_ template: String, key: UInt64, _ result: Result<Entry, any Error>) async {
        tasks[key] = nil
        restoringTotal -= 1
        shelves[template]?.restoring -= 1
        switch result {
        case .success(let entry):
            shelves[template]?.failures = 0
            if closed || shelves[template] == nil {
                await discard(entry)
            } else if let waiter = shelves[template]?.waiters.first {
                shelves[template]?.waiters.removeFirst()
                shelves[template]?.takes += 1
                waiter.continuation.resume(returning: entry)
            } else if let shelf = shelves[template], shelf.ready.count < shelf.target {
                shelves[template]?.ready.append(entry)
                measure(entry.machine)
            } else {
                await discard(entry)
            }
        case .failure(let error):
            let failures = (shelves[template]?.failures ?? 0) + 1
            shelves[template]?.failures = failures
            logger.warning(
                "warm pool refill failed", metadata: ["template": "\(template)", "error": "\(error)", "attempt": "\(failures)"])
            // A template whose restores keep failing rests, longer each time (at most a minute).
            let pause = Duration.seconds(min(60, failures * failures))
            shelves[template]?.pausedUntil = .now + pause
            Task { [weak self] in
                try? await Task.sleep(for: pause)
                await self?.pump()
            }
        }
        pump()
        releaseUnservedWaiters(template)
    }

    /// Waiters beyond the machines being restored for them get nil (they restore their own).
    private func releaseUnservedWaiters(_ template: String) {
        guard let shelf = shelves[template] else { return }
        var excess = shelf.waiters.count - shelf.restoring
        while excess > 0, let waiter = shelves[template]?.waiters.popLast() {
            waiter.continuation.resume(returning: nil)
            excess -= 1
        }
    }

    private func expire(_ template: String, _ ticket: UInt64) {
        guard let index = shelves[template]?.waiters.firstIndex(where: { $0.ticket == ticket }),
            let waiter = shelves[template]?.waiters.remove(at: index)
        else { return }
        waiter.continuation.resume(returning: nil)
    }

    private func measure(_ machine: any MachineInstance) {
        // A machine inside this process is not a VMM of its own (a test's fake guest).
        guard machine.processID != getpid(), let pss = Self.pssMiB(pid: machine.processID) else { return }
        measuredMiB = measuredMiB.map { $0 * 0.8 + pss * 0.2 } ?? pss
    }

    static func pssMiB(pid: Int32) -> Double? {
        guard pid > 0, let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Pss:") }),
            let kib = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        else { return nil }
        return kib / 1024
    }

    private func discard(_ entry: Entry) async {
        await entry.agent.close()
        await entry.machine.destroy()
    }

    /// Halves the target of shelves without creates for `shrinkAfter` (towards the
    /// minimum; towards none for a template unused for `forgetAfter`), destroying the surplus.
    private func startShrinking() {
        let period = max(policy.shrinkAfter / 4, .milliseconds(50))
        shrinker = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: period)
                await self?.shrink()
            }
        }
    }

    func shrink(now: ContinuousClock.Instant = .now) async {
        var surplus: [Entry] = []
        for (template, shelf) in shelves {
            let idle = now - shelf.lastDemand
            let floor = shelf.pinned || idle < policy.forgetAfter ? policy.minimum : 0
            guard shelf.target > floor, idle >= policy.shrinkAfter, now - shelf.lastShrink >= policy.shrinkAfter else { continue }
            let target = max(floor, shelf.target / 2)
            shelves[template]?.target = target
            shelves[template]?.lastShrink = now
            while let count = shelves[template]?.ready.count, count > target, let entry = shelves[template]?.ready.popLast() {
                surplus.append(entry)
            }
            logger.debug("warm pool shrinks", metadata: ["template": "\(template)", "target": "\(target)"])
        }
        for entry in surplus { await discard(entry) }
    }

    /// Runs the paths every sandbox's first calls take, so they are translated already.
    static func exercise(_ agent: GuestAgentClient) async throws {
        _ = try await agent.health()
        _ = try await agent.initialize(
            InitRequest(
                sandboxID: "warm", hostname: "omnirun", env: [:],
                unixTimeNanos: Int64(Date().timeIntervalSince1970 * 1_000_000_000),
                entropy: hostEntropy(), defaultUser: "user"))
        for _ in 0..<2 {
            _ = try await agent.run(ProcessStartRequest(argv: ["/bin/true"]))
            // Output on both streams, through the shell as the API runs commands.
            _ = try await agent.run(ProcessStartRequest(shell: "echo warm; echo warm >&2"))
        }
        _ = try await agent.writeFile(path: "/tmp/.omnirun-warm", bytes: Array("warm".utf8))
        let _: [UInt8] = try await agent.readFile(path: "/tmp/.omnirun-warm")
        _ = try await agent.stat(path: "/tmp/.omnirun-warm")
        _ = try await agent.list(path: "/tmp")
        try await agent.remove(path: "/tmp/.omnirun-warm")
        // Every sandbox's programs reach the LLM proxy through the host gateway.
        try await agent.exerciseGateway()
    }
}

/// 64 bytes from the host's RNG, base64, for a guest's identity call (snapshot hygiene).
func hostEntropy() -> String {
    var generator = SystemRandomNumberGenerator()
    return Data((0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
}
