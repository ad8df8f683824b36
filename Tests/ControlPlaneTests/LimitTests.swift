import Foundation
import Testing

/// The per-account limits answer 429 with the JSON error body, and count what they must.
@Suite("Control plane: limits")
struct LimitTests {
    @Test func theConcurrentLimitIsA429WithTheErrorBody() async throws {
        try await ControlPlane.run({ $0.defaultConcurrentLimit = 2 }) { plane in
            let first = try await plane.createSandbox()
            _ = try await plane.createSandbox()

            let refused = try await plane.call(.post, "/sandboxes", json: "{}")
            #expect(refused.status == 429)
            let body = try refused.decode(WireError.self)
            #expect(body.error == "concurrent sandbox limit reached")
            #expect(body.message.contains("2 sandboxes may run at once"))
            #expect(plane.driver.liveMachines.count == 2, "a refused create starts no machine")
            #expect(try await plane.list().count == 2)

            // Another account has its own limit.
            let other = try await plane.createAccount("second@example.com")
            _ = try await plane.createSandbox(key: other)

            // A kill frees a place.
            #expect(try await plane.call(.delete, "/sandboxes/\(first.sandboxID)").status == 204)
            _ = try await plane.createSandbox()
            #expect(try await plane.call(.post, "/sandboxes", json: "{}").status == 429)
        }
    }

    @Test func aForkCountsAgainstTheLimitAllOrNone() async throws {
        try await ControlPlane.run({ $0.defaultConcurrentLimit = 2 }) { plane in
            let sandbox = try await plane.createSandbox()
            let refused = try await plane.call(.post, "/sandboxes/\(sandbox.sandboxID)/fork", json: #"{"count": 2}"#)
            #expect(refused.status == 429)
            #expect(try refused.decode(WireError.self).error == "concurrent sandbox limit reached")
            #expect(try await plane.list().count == 1)
            #expect(plane.driver.counts.forks == 0, "nothing was copied")
        }
    }

    @Test func aResumeCountsAgainstTheConcurrentLimit() async throws {
        try await ControlPlane.run({ $0.defaultConcurrentLimit = 1 }) { plane in
            let paused = try await plane.createSandbox()
            #expect(try await plane.call(.post, "/sandboxes/\(paused.sandboxID)/pause").status == 200)
            // A paused sandbox does not run: another may.
            let running = try await plane.createSandbox()
            let refused = try await plane.call(.post, "/sandboxes/\(paused.sandboxID)/resume")
            #expect(refused.status == 429)
            #expect(try refused.decode(WireError.self).error == "concurrent sandbox limit reached")
            #expect(try await plane.call(.get, "/sandboxes/\(paused.sandboxID)").decode(WireSandbox.self).state == "paused")

            #expect(try await plane.call(.delete, "/sandboxes/\(running.sandboxID)").status == 204)
            let resumed = try await plane.call(.post, "/sandboxes/\(paused.sandboxID)/resume")
            #expect(resumed.status == 200)
            #expect(try resumed.decode(WireStatus.self).status == "running")
        }
    }

    @Test func thePausedLimitIsA429() async throws {
        try await ControlPlane.run({ $0.quotas.pausedPerAccount = 1 }) { plane in
            let first = try await plane.createSandbox()
            let second = try await plane.createSandbox()
            #expect(try await plane.call(.post, "/sandboxes/\(first.sandboxID)/pause").status == 200)
            let refused = try await plane.call(.post, "/sandboxes/\(second.sandboxID)/pause")
            #expect(refused.status == 429)
            let body = try refused.decode(WireError.self)
            #expect(body.error == "limit_reached" && body.message.contains("paused sandbox limit reached"))
            // The refused one keeps running and answers.
            #expect(try await plane.run("echo still here", in: second.sandboxID).stdout == "still here\n")
        }
    }

    @Test func aNodeThatIsFullIsA503() async throws {
        try await ControlPlane.run({ $0.maxSandboxes = 1 }) { plane in
            _ = try await plane.createSandbox()
            let other = try await plane.createAccount("third@example.com")
            let refused = try await plane.call(.post, "/sandboxes", json: "{}", key: other)
            #expect(refused.status == 503)
            #expect(try refused.decode(WireError.self).message.contains("this node is full"))
        }
    }
}
