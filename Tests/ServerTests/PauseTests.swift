import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Pause and resume", .serialized, .timeLimit(.minutes(10)))
struct PauseTests {
    /// A shell loop counts in its own memory and appends each number to a file: after a
    /// pause, a server restart and a resume, the same process goes on counting where it
    /// stopped (no restart from 1, no gap), and a file written before is intact.
    @Test func pauseKeepsProcessesMemoryAndDiskAcrossARestart() async throws {
        let server = try await TestServer.start(name: "pause", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
        do {
            let client = server.client()
            let id = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let counter = try await client.post(
                "/sandboxes/\(id)/commands",
                ["command": "i=0; while true; do i=$((i+1)); echo $i >> /tmp/counter.txt; sleep 0.1; done", "background": true])
            let pid = counter.object["pid"] as? Int ?? 0
            let blob = try await client.post(
                "/sandboxes/\(id)/commands",
                ["command": "head -c 8388608 /dev/urandom > /home/user/blob.bin && sync && sha256sum /home/user/blob.bin"])
            let digest = (blob.object["stdout"] as? String ?? "").prefix(64)
            #expect(digest.count == 64, "\(blob.text)")
            try await Task.sleep(for: .seconds(1))

            let paused = try await client.post("/sandboxes/\(id)/pause")
            #expect(paused.status == 200 && paused.object["status"] as? String == "paused", "\(paused.text)")
            let info = try await client.get("/sandboxes/\(id)")
            #expect(info.object["state"] as? String == "paused", "\(info.text)")
            #expect((info.object["pausedDiskBytes"] as? Int ?? 0) > 8 << 20, "\(info.text)")
            #expect(try await client.get("/sandboxes").array.first { $0["sandboxID"] as? String == id }?["state"] as? String == "paused")
            #expect(hostProcesses(matching: server.dataDirectory + "/sandboxes/\(id)/").isEmpty, "a paused sandbox runs no VMM")
            let refused = try await client.post("/sandboxes/\(id)/commands", ["command": "true"])
            #expect(refused.status == 409, "\(refused.text)")
            let status = try await client.get("/status")
            #expect(status.object["paused_sandboxes"] as? Int == 1 && status.object["active_sandboxes"] as? Int == 0, "\(status.text)")

            server.crash()
            try await server.restart()
            #expect(try await client.get("/sandboxes/\(id)").object["state"] as? String == "paused")

            let pausedFor = Date()
            try await Task.sleep(for: .seconds(2))
            let resumed = try await client.post("/sandboxes/\(id)/resume")
            #expect(resumed.status == 200 && resumed.object["status"] as? String == "running", "\(resumed.text)")
            #expect(try await client.get("/sandboxes/\(id)").object["state"] as? String == "running")
            let process = try await client.get("/sandboxes/\(id)/commands/\(pid)")
            #expect(process.object["running"] as? Bool == true, "\(process.text)")
            try await Task.sleep(for: .seconds(1))
            let check = try await client.post(
                "/sandboxes/\(id)/commands",
                ["command": "sha256sum /home/user/blob.bin | cut -c1-64; awk 'NR!=$1{bad=1} END{print NR, bad+0}' /tmp/counter.txt; date +%s"])
            let lines = (check.object["stdout"] as? String ?? "").split(separator: "\n").map(String.init)
            #expect(lines.count == 3, "\(check.text)")
            if lines.count == 3 {
                #expect(lines[0] == String(digest), "the file written before the pause changed")
                let parts = lines[1].split(separator: " ")
                // Counted on: more numbers than before the pause, every one in order.
                #expect(parts.count == 2 && (Int(parts[0]) ?? 0) > 15 && parts[1] == "0", "counter: \(lines[1])")
                // The guest's clock moved forward over the pause.
                let guestNow = Double(lines[2]) ?? 0
                #expect(abs(guestNow - Date().timeIntervalSince1970) < 5, "guest clock \(lines[2])")
                #expect(guestNow >= pausedFor.timeIntervalSince1970)
            }
            // Paused again and killed while paused: nothing is left.
            #expect(try await client.post("/sandboxes/\(id)/pause").object["status"] as? String == "paused")
            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
            #expect(try await client.get("/sandboxes/\(id)").status == 404)
            #expect(!FileManager.default.fileExists(atPath: server.dataDirectory + "/sandboxes/\(id)"))
            #expect(try await client.get("/status").object["paused_sandboxes"] as? Int == 0)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    /// Four pauses at once give one pause and the same answer (four resumes likewise); after the resume the
    /// process's stream replays its whole output, with no gap, and follows it. Resuming
    /// a running sandbox is a no-op. (A stream held open across the pause does not end
    /// yet: a known limit, see the README.)
    @Test func racingPausesAndAnOpenStream() async throws {
        let server = try await TestServer.start(name: "pause-race", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
        do {
            let client = server.client()
            let id = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let started = try await client.post(
                "/sandboxes/\(id)/commands", ["command": "for i in $(seq 1 100000); do echo line-$i; sleep 0.1; done", "background": true])
            let pid = started.object["pid"] as? Int ?? 0
            let before = try await client.events("/sandboxes/\(id)/commands/\(pid)/stream", timeout: 60) { events in
                events.count >= 3
            }
            #expect(before.count >= 3 && !before.contains { $0["type"] as? String == "exit" })
            // Four pauses at once, then four resumes: each waits its turn and answers the
            // state the sandbox is in (this once hung the whole server: see `exclusive`).
            for (action, state) in [("pause", "paused"), ("resume", "running")] {
                let replies = try await withThrowingTaskGroup(of: HTTPTestClient.Reply.self) { group in
                    for _ in 0..<4 { group.addTask { try await client.request("POST", "/sandboxes/\(id)/\(action)", timeout: 90) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                for reply in replies {
                    #expect(reply.status == 200 && reply.object["status"] as? String == state, "\(action): \(reply.text)")
                }
                // Once more, alone: the same answer.
                #expect(try await client.post("/sandboxes/\(id)/\(action)").object["status"] as? String == state)
                // The server still answers everything else.
                #expect(try await client.get("/sandboxes/\(id)").object["state"] as? String == state)
            }
            let seenCount = before.count
            let events = try await client.events("/sandboxes/\(id)/commands/\(pid)/stream", timeout: 60) { events in
                events.count > seenCount + 5
            }
            let text = events.compactMap { $0["data"] as? String }.joined()
            #expect(text.hasPrefix("line-1\nline-2\n"), "\(text.prefix(40))")
            let numbers = text.split(separator: "\n").compactMap { Int($0.dropFirst(5)) }
            #expect(numbers == Array(1...(numbers.last ?? 0)), "the output has a gap or a restart")
            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    /// `autoPause`: the timeout pauses instead of killing; paused sandboxes do not
    /// count against the concurrent limit, a resume does (429 when full).
    @Test func autoPauseOnTimeoutAndTheConcurrentLimit() async throws {
        let server = try await TestServer.start(
            name: "autopause", environment: ["OMNIRUN_IDLE_TIMEOUT": "600", "OMNIRUN_CONCURRENT_LIMIT": "1"])
        do {
            let client = server.client()
            let id = try await createSandbox(client, ["template": "playground", "timeout": 4, "autoPause": true])
            _ = try await client.post("/sandboxes/\(id)/files", ["path": "/home/user/note.txt", "content": "kept"])
            var state = ""
            for _ in 0..<60 {
                state = try await client.get("/sandboxes/\(id)").object["state"] as? String ?? "gone"
                if state != "running" { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(state == "paused")
            #expect(try await client.get("/sandboxes/history").array.isEmpty)

            // The paused one does not count: another may run; then the resume is refused.
            let other = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let full = try await client.post("/sandboxes/\(id)/resume")
            #expect(full.status == 429, "\(full.text)")
            #expect(try await client.delete("/sandboxes/\(other)").status == 204)

            #expect(try await client.post("/sandboxes/\(id)/resume").object["status"] as? String == "running")
            let read = try await client.get("/sandboxes/\(id)/files?path=%2Fhome%2Fuser%2Fnote.txt")
            #expect(read.object["content"] as? String == "kept", "\(read.text)")
            // The timeout starts again at the resume.
            let info = try await client.get("/sandboxes/\(id)").object
            #expect(info["state"] as? String == "running" && info["endAt"] != nil)
            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
