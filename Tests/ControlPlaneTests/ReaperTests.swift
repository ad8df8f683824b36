import Foundation
import Testing

/// The reaper ends sandboxes past their timeout and sandboxes idle too long (or pauses
/// those that asked to be paused instead).
@Suite("Control plane: timeouts and idleness")
struct ReaperTests {
    @Test func aSandboxEndsAtItsTimeout() async throws {
        try await ControlPlane.run { plane in
            let short = try await plane.createSandbox(#"{"timeout": 1}"#)
            let long = try await plane.createSandbox(#"{"timeout": 600}"#)
            let started = ContinuousClock.now
            let ended = try await eventually { try await plane.list().map(\.sandboxID) == [long.sandboxID] }
            #expect(ended, "the 1 s sandbox is gone, the 600 s one runs")
            #expect(ContinuousClock.now - started < .seconds(4))
            let history = try await plane.history()
            #expect(history.map(\.sandboxID) == [short.sandboxID])
            #expect(history.first?.endReason == "timeout")
            #expect(await eventually { plane.driver.liveMachines.map(\.name) == [long.sandboxID] }, "its machine was destroyed")
        }
    }

    @Test func aLongerTimeoutKeepsASandbox() async throws {
        try await ControlPlane.run { plane in
            // A timeout the extension comes well within even when the suite's load slows this
            // process, then a wait past it.
            let created = ContinuousClock.now
            let sandbox = try await plane.createSandbox(#"{"timeout": 8}"#)
            let extended = try await plane.call(.post, "/sandboxes/\(sandbox.sandboxID)/timeout", json: #"{"timeout": 600}"#)
            #expect(extended.status == 200)
            try await Task.sleep(until: created + .milliseconds(8500))
            #expect(try await plane.list().map(\.sandboxID) == [sandbox.sandboxID])
            #expect(try await plane.history().isEmpty)
        }
    }

    @Test func anIdleSandboxIsKilled() async throws {
        try await ControlPlane.run({ $0.idleTimeoutSeconds = 1 }) { plane in
            let idle = try await plane.createSandbox(#"{"timeout": 600}"#)
            // Listing is no activity of any one sandbox; calls on a sandbox are.
            let ended = try await eventually { try await plane.list().isEmpty }
            #expect(ended, "an untouched sandbox is killed after the idle timeout")
            let history = try await plane.history()
            #expect(history.map(\.sandboxID) == [idle.sandboxID])
            #expect(history.first?.endReason == "idle")
            #expect(await eventually { plane.driver.liveMachines.isEmpty }, "its machine was destroyed")
        }
    }

    @Test func callsKeepASandboxFromBeingIdle() async throws {
        // Idle after 8 s, calls every 0.2 s for 10 s: one call may take seconds when the
        // suite's load starves this process, and still comes well within the idle timeout.
        try await ControlPlane.run({ $0.idleTimeoutSeconds = 8 }) { plane in
            let busy = try await plane.createSandbox(#"{"timeout": 600}"#)
            let until = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < until {
                #expect(try await plane.run("true", in: busy.sandboxID).exit_code == 0)
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(try await plane.list().map(\.sandboxID) == [busy.sandboxID])
        }
    }

    @Test func autoPauseAtTheTimeoutPausesInsteadOfEnding() async throws {
        try await ControlPlane.run { plane in
            // Long enough for the write to come first on a loaded machine (a write to a
            // sandbox being paused is a 409).
            let sandbox = try await plane.createSandbox(#"{"timeout": 5, "autoPause": true}"#)
            try await plane.writeFile("/tmp/state", "before the timeout", in: sandbox.sandboxID)
            let paused = try await eventually { try await plane.list().first?.state == "paused" }
            #expect(paused)
            #expect(try await plane.history().isEmpty, "a paused sandbox has not ended")
            #expect(await eventually { plane.driver.liveMachines.isEmpty }, "a paused sandbox has no machine")
            #expect(try await plane.call(.post, "/sandboxes/\(sandbox.sandboxID)/resume").status == 200)
            #expect(try await plane.readFile("/tmp/state", in: sandbox.sandboxID) == "before the timeout")
        }
    }
}
