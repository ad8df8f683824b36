import Foundation
import OmniRunCore
import Testing

/// Pause → resume keeps a sandbox's files; a fork's copies start from them and go their own way.
@Suite("Control plane: pause, resume, fork")
struct PauseForkTests {
    @Test func pauseAndResumeKeepTheFiles() async throws {
        try await ControlPlane.run { plane in
            let sandbox = try await plane.createSandbox(#"{"timeout": 600}"#)
            let id = sandbox.sandboxID
            try await plane.writeFile("/home/user/work.txt", "half done", in: id)
            let machineBefore = try #require(plane.driver.machine(named: id))

            let pause = try await plane.call(.post, "/sandboxes/\(id)/pause")
            #expect(pause.status == 200)
            #expect(try pause.decode(WireStatus.self).status == "paused")
            let info = try await plane.call(.get, "/sandboxes/\(id)").decode(WireSandbox.self)
            #expect(info.state == "paused" && info.pausedAt != nil)
            #expect(plane.driver.liveMachines.isEmpty, "a paused sandbox has no machine running")
            #expect(plane.runtime.pausedMachine(SandboxID(id)!) != nil, "its saved state is on disk")
            let busy = try await plane.call(.post, "/sandboxes/\(id)/commands", json: #"{"command": "echo hi"}"#)
            #expect(busy.status == 409)
            #expect(try busy.decode(WireError.self).message.contains("resume it first"))
            #expect(try await plane.call(.post, "/sandboxes/\(id)/pause").decode(WireStatus.self).status == "paused")

            let resume = try await plane.call(.post, "/sandboxes/\(id)/resume")
            #expect(resume.status == 200)
            #expect(try resume.decode(WireStatus.self).status == "running")
            let machineAfter = try #require(plane.driver.machine(named: id))
            #expect(machineAfter !== machineBefore, "it runs on a new machine")
            #expect(plane.driver.counts.resumes == 1)
            #expect(try await plane.readFile("/home/user/work.txt", in: id) == "half done")
            #expect(plane.runtime.pausedMachine(SandboxID(id)!) == nil, "the saved state is spent")
            #expect(try await plane.call(.get, "/sandboxes/\(id)").decode(WireSandbox.self).state == "running")

            // Killing a paused sandbox removes its saved state.
            #expect(try await plane.call(.post, "/sandboxes/\(id)/pause").status == 200)
            #expect(try await plane.call(.delete, "/sandboxes/\(id)").status == 204)
            #expect(!FileManager.default.fileExists(atPath: plane.runtime.machineDirectory(of: SandboxID(id)!)))
            #expect(try await plane.history().first?.endReason == "killed")
        }
    }

    @Test func forkCopiesTheFilesAndTheCopiesAreIndependent() async throws {
        try await ControlPlane.run { plane in
            let origin = try await plane.createSandbox(#"{"timeout": 600, "metadata": {"run": "42"}}"#)
            try await plane.writeFile("/home/user/data.txt", "shared start", in: origin.sandboxID)

            let reply = try await plane.call(.post, "/sandboxes/\(origin.sandboxID)/fork", json: #"{"count": 2}"#)
            #expect(reply.status == 201, "\(reply)")
            let copies = try reply.decode(WireForked.self).sandboxes
            #expect(copies.count == 2)
            #expect(Set(copies.map(\.sandboxID)).count == 2 && !copies.contains { $0.sandboxID == origin.sandboxID })
            #expect(copies.allSatisfy { $0.state == "running" && $0.metadata == ["run": "42"] })
            #expect(Set(try await plane.list().map(\.sandboxID)) == Set(copies.map(\.sandboxID) + [origin.sandboxID]))
            #expect(plane.driver.liveMachines.count == 3)

            for copy in copies {
                #expect(try await plane.readFile("/home/user/data.txt", in: copy.sandboxID) == "shared start")
            }
            #expect(try await plane.readFile("/home/user/data.txt", in: origin.sandboxID) == "shared start")

            // Each goes its own way.
            try await plane.writeFile("/home/user/data.txt", "changed in the first copy", in: copies[0].sandboxID)
            try await plane.writeFile("/home/user/only-origin.txt", "x", in: origin.sandboxID)
            #expect(try await plane.readFile("/home/user/data.txt", in: origin.sandboxID) == "shared start")
            #expect(try await plane.readFile("/home/user/data.txt", in: copies[1].sandboxID) == "shared start")
            #expect(try await plane.readFile("/home/user/only-origin.txt", in: copies[0].sandboxID) == nil)

            // Killing the origin leaves the copies running.
            #expect(try await plane.call(.delete, "/sandboxes/\(origin.sandboxID)").status == 204)
            #expect(try await plane.run("cat data.txt", in: copies[1].sandboxID).stdout == "shared start")
        }
    }

    @Test func aPausedSandboxCannotBeForked() async throws {
        try await ControlPlane.run { plane in
            let sandbox = try await plane.createSandbox()
            #expect(try await plane.call(.post, "/sandboxes/\(sandbox.sandboxID)/pause").status == 200)
            let refused = try await plane.call(.post, "/sandboxes/\(sandbox.sandboxID)/fork", json: #"{"count": 1}"#)
            #expect(refused.status == 409)
            #expect(try await plane.list().count == 1)
        }
    }
}
