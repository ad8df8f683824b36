import AgentClient
import AgentProtocol
import Foundation
import OmniRunCore
import OmniRunError
import QEMUDriver
import Testing
import TestSupport

@testable import SandboxRuntime

@Suite("Sandbox lifecycle", .timeLimit(.minutes(8)))
struct LifecycleTests {
    @Test func tenSandboxesAtOnceAreIsolatedAndUnique() async throws {
        let runtime = try await TestRuntime.runtime()
        // Keep every sandbox that did start, so that a failed create leaves none running.
        let results = await withTaskGroup(of: Result<Sandbox, any Error>.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    do { return .success(try await runtime.create(SandboxSpec(template: "playground"))) } catch { return .failure(error) }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let sandboxes = results.compactMap { try? $0.get() }
        if let failure = results.first(where: { (try? $0.get()) == nil }), case .failure(let error) = failure {
            for sandbox in sandboxes { await runtime.destroy(sandbox.id) }
            throw error
        }
        #expect(Set(sandboxes.map(\.id)).count == 10)
        let first = sandboxes[0]
        _ = try await first.agent.writeFile(path: "/tmp/secret.txt", bytes: Array("only here".utf8))
        // Snapshot hygiene: every restored guest has its own randomness and identity.
        let script = """
            head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo
            uuidgen
            python3 -c 'import secrets; print(secrets.token_hex(16))'
            cat /etc/machine-id
            hostname
            test -e /tmp/secret.txt && echo present || echo absent
            """
        let outputs = try await withThrowingTaskGroup(of: (SandboxID, [String]).self) { group in
            for sandbox in sandboxes {
                group.addTask { (sandbox.id, try await sandbox.run(script).stdoutText.split(separator: "\n").map(String.init)) }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        for line in 0..<5 {
            let values = outputs.values.map { $0.count > line ? $0[line] : "" }
            #expect(Set(values).count == 10, "line \(line) repeats across sandboxes: \(values)")
        }
        for sandbox in sandboxes {
            let lines = outputs[sandbox.id] ?? []
            #expect(lines.count == 6)
            #expect(lines.last == (sandbox.id == first.id ? "present" : "absent"))
            #expect(lines.dropLast().last == sandbox.id.hostname)
        }
        for sandbox in sandboxes { await runtime.destroy(sandbox.id) }
    }

    @Test func destroyLeavesNoProcessAndNoFiles() async throws {
        let runtime = try await TestRuntime.runtime()
        let sandbox = try await runtime.create(SandboxSpec(template: "playground"))
        let directory = TestRuntime.dataDirectory + "/sandboxes/\(sandbox.id)"
        #expect(FileManager.default.fileExists(atPath: directory))
        #expect(!hostProcesses(matching: directory).isEmpty)
        await runtime.destroy(sandbox.id)
        #expect(hostProcesses(matching: directory).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: directory))
        #expect(await runtime.sandbox(sandbox.id) == nil)
    }

    @Test func killedMachineIsReportedAsFailed() async throws {
        let runtime = try await TestRuntime.runtime()
        let sandbox = try await runtime.create(SandboxSpec(template: "playground"))
        let directory = TestRuntime.dataDirectory + "/sandboxes/\(sandbox.id)"
        let pids = hostProcesses(matching: directory)
        #expect(pids.count == 1)
        for pid in pids { kill(pid, SIGKILL) }
        let exit = await sandbox.machine.waitForExit()
        guard case .crashed = exit else {
            Issue.record("expected a crash, got \(exit)")
            return
        }
        try await waitUntil { await runtime.sandbox(sandbox.id) == nil }
        let failure = await runtime.failure(of: sandbox.id)
        #expect(failure == exit)
        #expect(!FileManager.default.fileExists(atPath: directory))
        do {
            _ = try await sandbox.run("true")
            Issue.record("a dead sandbox answered")
        } catch let error as OmniRunError {
            #expect(error.code == .unavailable)
        }
    }

    @Test func unresponsiveGuestTimesOutNamingTheSandbox() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let machine = sandbox.machine
            try await machine.stopCPUs()
            do {
                _ = try await sandbox.agent.health(timeout: .milliseconds(500))
                Issue.record("a paused guest answered")
            } catch let error as OmniRunError {
                #expect(error.code == .timeout)
                #expect(error.message.contains(sandbox.id.rawValue))
            }
            try await machine.continueCPUs()
            _ = try await sandbox.agent.health()
        }
    }

    @Test func coldBootStillWorks() async throws {
        try await TestRuntime.withSandbox(SandboxSpec(template: "playground", coldBoot: true)) { sandbox in
            let result = try await sandbox.run("cat /proc/1/comm; echo $OMNIRUN_SANDBOX_ID")
            #expect(result.stdoutText == "init\n\(sandbox.id)\n")
        }
    }

    @Test func unknownTemplateIsNotFound() async throws {
        let runtime = try await TestRuntime.runtime()
        await expectCode(.notFound) { _ = try await runtime.create(SandboxSpec(template: "no-such-template")) }
        await expectCode(.invalidArgument) { _ = try await runtime.create(SandboxSpec(template: "../etc")) }
    }
}

@Suite("Warm pool", .timeLimit(.minutes(8)))
struct WarmPoolTests {
    @Test func pooledMachineTakesItsOwnIdentityAndLeavesNothing() async throws {
        let shared = try await TestRuntime.runtime()
        var configuration = shared.configuration
        configuration.warmPoolSize = 1
        let runtime = SandboxRuntime(
            driver: shared.driver, catalog: shared.catalog, configuration: configuration,
            logger: .init(label: "omnirun.test.pool"))
        try await runtime.prepare(template: "playground")
        // Pooled machines warm up at low priority: give them time on a busy machine.
        await runtime.waitForPool("playground", timeout: .seconds(400))
        #expect(await runtime.pooled("playground") == 1)
        // A waiting machine's CPUs are stopped: its QEMU uses no CPU time.
        let waiting = await runtime.pooledMachines("playground")
        #expect(waiting.count == 1)
        if let pid = waiting.first?.processID {
            let before = cpuTicks(pid)
            try await Task.sleep(for: .seconds(2))
            #expect(cpuTicks(pid) - before <= 2, "a pooled machine used CPU while waiting")
        }
        let sandbox = try await runtime.create(SandboxSpec(template: "playground", env: ["FROM_POOL": "1"]))
        let result = try await sandbox.run("hostname; echo $FROM_POOL $OMNIRUN_SANDBOX_ID; id -un")
        #expect(result.stdoutText == "\(sandbox.id.hostname)\n1 \(sandbox.id)\nuser\n")
        // The warm-up's processes and files are not the user's to see.
        let finished = try await sandbox.agent.listProcesses(includeFinished: true)
        #expect(finished.allSatisfy { !$0.command.contains("warm") })
        await expectCode(.notFound) { _ = try await sandbox.agent.stat(path: "/tmp/.omnirun-warm") }
        await runtime.destroyAll()
        #expect(await runtime.pooled("playground") == 0)
        #expect(await runtime.sandbox(sandbox.id) == nil)
    }

    /// A create from the pool answers before the guest has its identity; a sandbox
    /// destroyed in that moment goes away cleanly, and calls made before the
    /// identity is in place wait for it instead of reaching the agent early.
    @Test func callsWaitForTheIdentityAndAnEarlyDestroyIsClean() async throws {
        let shared = try await TestRuntime.runtime()
        var configuration = shared.configuration
        configuration.warmPoolSize = 2
        configuration.warmPoolRefillDelay = .seconds(600)
        let runtime = SandboxRuntime(
            driver: shared.driver, catalog: shared.catalog, configuration: configuration,
            logger: .init(label: "omnirun.test.pool"))
        try await runtime.prepare(template: "playground")
        await runtime.waitForPool("playground", timeout: .seconds(400))
        #expect(await runtime.pooled("playground") == 2)
        let early = try await runtime.create(SandboxSpec(template: "playground"))
        let pid = early.machine.processID
        await runtime.destroy(early.id)
        #expect(kill(pid, 0) != 0, "the machine of a destroyed sandbox still runs")
        let sandbox = try await runtime.create(SandboxSpec(template: "playground", env: ["EARLY": "yes"]))
        // Sent at once, in parallel: every one sees the identity.
        try await withThrowingTaskGroup(of: ProcessResult.self) { group in
            for _ in 0..<3 { group.addTask { try await sandbox.run("echo $EARLY $(hostname)") } }
            for try await result in group {
                #expect(result.stdoutText == "yes \(sandbox.id.hostname)\n", "\(result) stderr: \(result.stderrText)")
            }
        }
        await runtime.destroyAll()
    }
}

/// User + system CPU ticks of a process.
private func cpuTicks(_ pid: Int32) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
}
