import Foundation
import OmniRunCore
import Testing

/// Create, read, list, use and kill sandboxes through the API; what ended is history;
/// a machine that dies on its own ends its sandbox as failed.
@Suite("Control plane: sandbox lifecycle")
struct SandboxLifecycleTests {
    @Test func createGetListAndKill() async throws {
        try await ControlPlane.run { plane in
            let created = try await plane.createSandbox(#"{"timeout": 600, "metadata": {"name": "first"}}"#)
            #expect(created.state == "running")
            #expect(created.templateID == "python-3.11")
            #expect(created.metadata == ["name": "first"])
            #expect(created.endAt != nil, "a sandbox with a timeout says when it ends")
            #expect(plane.driver.machine(named: created.sandboxID) != nil, "the sandbox runs on its own machine")

            let info = try await plane.call(.get, "/sandboxes/\(created.sandboxID)")
            #expect(info.status == 200)
            #expect(try info.decode(WireSandbox.self).sandboxID == created.sandboxID)
            #expect(try await plane.list().map(\.sandboxID) == [created.sandboxID])

            // The guest answers over the real agent protocol.
            let echo = try await plane.run("echo hello from the guest", in: created.sandboxID)
            #expect(echo.stdout == "hello from the guest\n" && echo.exit_code == 0)
            #expect(try await plane.run("exit 3", in: created.sandboxID).exit_code == 3)
            try await plane.writeFile("notes.txt", "kept in memory", in: created.sandboxID)
            #expect(try await plane.readFile("/home/user/notes.txt", in: created.sandboxID) == "kept in memory")
            #expect(try await plane.run("cat notes.txt", in: created.sandboxID).stdout == "kept in memory")

            let kill = try await plane.call(.delete, "/sandboxes/\(created.sandboxID)")
            #expect(kill.status == 204)
            #expect(try await plane.call(.get, "/sandboxes/\(created.sandboxID)").status == 404)
            #expect(try await plane.list().isEmpty)
            #expect(plane.driver.liveMachines.isEmpty, "the machine is gone with the sandbox")
            #expect(!FileManager.default.fileExists(atPath: plane.runtime.machineDirectory(of: SandboxID(created.sandboxID)!)))
            #expect(try await plane.call(.delete, "/sandboxes/\(created.sandboxID)").status == 404, "a second kill finds nothing")
        }
    }

    @Test func aCommandPastItsTimeoutIsEndedWith124() async throws {
        try await ControlPlane.run { plane in
            let sandbox = try await plane.createSandbox()
            let started = ContinuousClock.now
            let result = try await plane.run("sleep 30", in: sandbox.sandboxID, timeout: 1)
            #expect(result.exit_code == 124)
            #expect(result.stderr.contains("timed out after 1 s"))
            // Well before the 30 s sleep would have ended, however loaded the machine.
            #expect(ContinuousClock.now - started < .seconds(25))
        }
    }

    @Test func historyListsEndedSandboxesNewestCreatedFirst() async throws {
        try await ControlPlane.run { plane in
            let first = try await plane.createSandbox(#"{"timeout": 120}"#)
            try await Task.sleep(for: .milliseconds(5))
            let second = try await plane.createSandbox()
            let running = try await plane.createSandbox()
            #expect(try await plane.history().isEmpty)
            #expect(try await plane.call(.delete, "/sandboxes/\(first.sandboxID)").status == 204)
            #expect(try await plane.call(.delete, "/sandboxes/\(second.sandboxID)").status == 204)

            let history = try await plane.history()
            #expect(history.map(\.sandboxID) == [second.sandboxID, first.sandboxID])
            #expect(history.allSatisfy { $0.status == "killed" && $0.endReason == "killed" && $0.endedAt != nil })
            #expect(history.last?.timeoutSeconds == 120)
            let page = try await plane.call(.get, "/sandboxes/history?limit=1")
            #expect(try page.decode([WireHistoryItem].self).map(\.sandboxID) == [second.sandboxID])
            #expect(try await plane.list().map(\.sandboxID) == [running.sandboxID])

            // Another account sees none of it.
            let other = try await plane.createAccount("other@example.com")
            #expect(try await plane.history(key: other).isEmpty)
            #expect(try await plane.call(.get, "/sandboxes/\(running.sandboxID)", key: other).status == 404)
        }
    }

    @Test func aMachineThatDiesEndsItsSandboxAsFailed() async throws {
        try await ControlPlane.run { plane in
            let sandbox = try await plane.createSandbox()
            let machine = try #require(plane.driver.machine(named: sandbox.sandboxID))
            await machine.crash("the VMM was killed")

            let gone = try await eventually { try await plane.call(.get, "/sandboxes/\(sandbox.sandboxID)").status == 404 }
            #expect(gone, "a sandbox whose machine died is not running")
            let ended = try #require(try await plane.history().first)
            #expect(ended.sandboxID == sandbox.sandboxID)
            #expect(ended.endReason?.hasPrefix("failed: crashed: the VMM was killed") == true, "\(ended.endReason ?? "no reason")")
            #expect(plane.driver.liveMachines.isEmpty)
            #expect(try await plane.list().isEmpty)
            // Its place is free again.
            _ = try await plane.createSandbox()
        }
    }
}
