import Foundation
import Logging
import OmniRunCore
import OmniRunError
import SandboxRuntime
import TestSupport
import Testing

/// Creates on fake guests: the restore's first exchange, and the warm pool's sizing (`MemoryMachineDriver`, restores as slow as a
/// test asks): a fixed pool, one that follows demand, a create that finds the pool empty,
/// parallel refills, shrinking and the memory budget.
@Suite("Warm pool sizing")
struct WarmPoolSizingTests {
    /// A runtime over the memory driver with `policy`, prepared (its pool registered).
    static func withRuntime(
        _ policy: WarmPoolPolicy, restoreDelay: Duration = .zero, refillDelay: Duration = .zero,
        configure: (inout SandboxRuntime.Configuration) -> Void = { _ in },
        _ body: (SandboxRuntime, MemoryMachineDriver) async throws -> Void
    ) async throws {
        let root = FileManager.default.temporaryDirectory.path + "/omnirun-pool-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try ControlPlane.writeTemplate("playground", cache: root + "/cache")
        var logger = Logger(label: "omnirun.pool-test")
        logger.logLevel = .error
        let driver = MemoryMachineDriver()
        var configuration = SandboxRuntime.Configuration(dataDirectory: root + "/data")
        // The suite runs beside real VMs on a small machine: nothing here may depend on how
        // soon a fake guest answers, only on what the pool does.
        configuration.agentTimeout = .seconds(120)
        configuration.warmUp = [:]
        configuration.warmPool = policy
        configuration.warmPoolRefillDelay = refillDelay
        configuration.warmPoolMissWait = .seconds(600)
        var network = HostNetwork.Configuration(dataDirectory: root + "/data")
        network.enabled = false
        configuration.network = network
        configure(&configuration)
        let runtime = SandboxRuntime(
            driver: driver, catalog: ImageCatalog(cacheDirectory: root + "/cache"), configuration: configuration, logger: logger)
        try await runtime.prepare(template: "playground")
        driver.restoreDelay = restoreDelay
        do {
            try await body(runtime, driver)
        } catch {
            await runtime.destroyAll()
            throw error
        }
        await runtime.destroyAll()
        #expect(driver.liveMachines.isEmpty, "machines outlived the runtime")
    }

    static func eventually(
        _ what: String, within: Duration = .seconds(300), _ condition: () async -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + within
        while ContinuousClock.now < deadline {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("not within \(within): \(what)")
    }

    @Test func policyParsing() throws {
        #expect(try WarmPoolPolicy(parsing: "3") == .fixed(3))
        #expect(try WarmPoolPolicy(parsing: "0").isEnabled == false)
        let auto = try WarmPoolPolicy(parsing: "auto")
        #expect(auto.adaptive && auto.minimum == 1 && auto.maximum >= 4 && auto.memoryBudgetMiB > 0)
        let tuned = try WarmPoolPolicy(parsing: "auto:min=2,max=6,memory=512")
        #expect(tuned.minimum == 2 && tuned.maximum == 6 && tuned.memoryBudgetMiB == 512)
        for bad in ["-1", "lots", "auto:min=3,max=2", "auto:size=3", "auto:min=x", "1001", "auto:max=-2"] {
            #expect(throws: OmniRunError.self, "\(bad)") { _ = try WarmPoolPolicy(parsing: bad) }
        }
    }

    /// Back-to-back creates find the pool empty; it grows to keep up, in parallel, and a
    /// create that finds it empty takes the machine already being restored instead of
    /// starting one of its own.
    @Test func autoPoolGrowsWithDemandAndMissesWaitForRefills() async throws {
        let policy = WarmPoolPolicy.auto(minimum: 1, maximum: 6, memoryBudgetMiB: 100_000)
        // Restores slower than creates, however loaded the machine: the creates outrun the pool.
        try await Self.withRuntime(policy, restoreDelay: .seconds(1)) { runtime, driver in
            await runtime.waitForPool("playground", timeout: .seconds(300))
            #expect(await runtime.poolFigures("playground")?.ready == 1)
            let before = driver.counts.restores
            var created: [SandboxID] = []
            for _ in 0..<8 {
                let sandbox = try await runtime.create(SandboxSpec(template: "playground"))
                #expect(try await sandbox.run("echo ok").stdoutText == "ok\n")
                created.append(sandbox.id)
                await runtime.destroy(sandbox.id)
            }
            let figures = try #require(await runtime.poolFigures("playground"))
            // Every create came from the pool (taken ready or waited for): no restore of its own.
            #expect(figures.takes == 8, "\(figures)")
            #expect(figures.misses >= 1)
            #expect(figures.target > 1 && figures.target <= 6, "\(figures)")
            #expect(driver.mostRestoringAtOnce <= policy.parallelism)
            try await Self.eventually("the pool fills to its new target") {
                await runtime.poolFigures("playground").map { $0.ready == $0.target } ?? false
            }
            // Restores: the 8 sandboxes plus what stands ready now, nothing wasted.
            let ready = await runtime.poolFigures("playground")?.ready ?? 0
            #expect(driver.counts.restores - before == 8 + ready - 1)
        }
    }

    /// Without demand the pool halves towards its minimum, destroying the surplus.
    @Test func autoPoolShrinksWhenIdle() async throws {
        let policy = WarmPoolPolicy.auto(minimum: 1, maximum: 4, memoryBudgetMiB: 100_000)
        try await Self.withRuntime(policy, restoreDelay: .seconds(1)) { runtime, driver in
            await runtime.waitForPool("playground", timeout: .seconds(300))
            // Two creates in a row: the second finds the pool empty, the target doubles.
            for _ in 0..<3 {
                let sandbox = try await runtime.create(SandboxSpec(template: "playground"))
                await runtime.destroy(sandbox.id)
            }
            try await Self.eventually("the pool grows and fills") {
                await runtime.poolFigures("playground").map { $0.target >= 2 && $0.ready == $0.target } ?? false
            }
            let grown = try #require(await runtime.poolFigures("playground"))
            await runtime.shrinkPool(asIf: .now + .seconds(61))
            let shrunk = try #require(await runtime.poolFigures("playground"))
            #expect(shrunk.target == max(1, grown.target / 2))
            #expect(shrunk.ready == shrunk.target)
            #expect(driver.liveMachines.count == shrunk.ready, "surplus machines were not destroyed")
            // A prepared template keeps its minimum however long it stays unused.
            await runtime.shrinkPool(asIf: .now + .seconds(4000))
            await runtime.shrinkPool(asIf: .now + .seconds(8000))
            #expect(await runtime.poolFigures("playground")?.target == 1)
        }
    }

    /// The memory budget caps the pool whatever the demand.
    @Test func memoryBudgetCapsThePool() async throws {
        var policy = WarmPoolPolicy.auto(minimum: 1, maximum: 8, memoryBudgetMiB: 100)
        policy.machineMiB = 96
        try await Self.withRuntime(policy, restoreDelay: .seconds(1)) { runtime, driver in
            await runtime.waitForPool("playground", timeout: .seconds(300))
            var held: [Sandbox] = []
            for _ in 0..<6 { held.append(try await runtime.create(SandboxSpec(template: "playground"))) }
            try await Task.sleep(for: .milliseconds(300))
            let figures = try #require(await runtime.poolFigures("playground"))
            #expect(figures.target >= 2, "\(figures)")
            #expect(figures.ready + figures.restoring <= 1, "the pool went past its memory budget: \(figures)")
            #expect(driver.liveMachines.count <= held.count + 1)
            for sandbox in held { await runtime.destroy(sandbox.id) }
        }
    }

    /// A fixed pool stays at its size and refills in parallel.
    @Test func fixedPoolRefillsInParallel() async throws {
        try await Self.withRuntime(.fixed(4), restoreDelay: .seconds(3)) { runtime, driver in
            let sandboxes = [
                try await runtime.create(SandboxSpec(template: "playground")),
                try await runtime.create(SandboxSpec(template: "playground")),
            ]
            await runtime.waitForPool("playground", timeout: .seconds(300))
            let figures = try #require(await runtime.poolFigures("playground"))
            #expect(figures.target == 4 && figures.ready == 4)
            #expect(driver.mostRestoringAtOnce == min(4, WarmPoolPolicy.fixed(4).parallelism))
            for sandbox in sandboxes { await runtime.destroy(sandbox.id) }
        }
    }

    /// A restored guest takes its identity in the first exchange (one exchange fewer);
    /// the previous path (`OMNIRUN_RESTORE_PATH=previous`) asked for its health first.
    @Test func restoredGuestTakesItsIdentityInTheFirstExchange() async throws {
        for identityFirst in [true, false] {
            try await Self.withRuntime(.fixed(0), configure: { $0.identityInFirstExchange = identityFirst }) { runtime, driver in
                let sandbox = try await runtime.create(SandboxSpec(template: "playground"))
                let calls = await driver.machine(named: sandbox.id.rawValue)?.agent?.lifecycleCalls ?? []
                #expect(calls == (identityFirst ? ["initialize"] : ["health", "initialize"]), "\(calls)")
                #expect(try await sandbox.health().sandboxID == sandbox.id.rawValue)
                await runtime.destroy(sandbox.id)
            }
        }
    }
}
