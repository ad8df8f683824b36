import AgentProtocol
import Foundation
import NIOConcurrencyHelpers
import OmniRunCore
import SandboxRuntime
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Guests that attack the host, against a real `omnirun serve` with real VMs: a root user
/// forging `/proc`, and a hostile agent put where a sandbox's agent socket was before a
/// restart (the server re-attaches to it). The server survives, keeps serving the other
/// sandbox, bounds what it holds, and ends the liar as failed. Each attack prints its
/// figures (`[figures]` lines: the server's descriptors, memory and disk).
@Suite("Hostile guests against a real server", .serialized, .timeLimit(.minutes(20)))
struct HostileGuestTests {
    static func run(_ client: HTTPTestClient, _ id: String, _ command: String, user: String? = nil) async throws -> HTTPTestClient.Reply {
        var body: [String: Any] = ["command": command, "timeout": 120]
        if let user { body["user"] = user }
        return try await client.post("/sandboxes/\(id)/commands", body)
    }

    static func expectAlive(_ server: TestServer, _ client: HTTPTestClient, bystander: String) async throws {
        #expect(server.process.isRunning, "the server is up")
        #expect(try await client.get("/status").status == 200)
        let echo = try await run(client, bystander, "echo still-here")
        #expect(echo.object["stdout"] as? String == "still-here\n", "\(echo.text)")
    }

    /// The issue's attack for real: the sandbox's root bind-mounts a forged `/proc/meminfo`
    /// (MemTotal past Int64) and `/proc/stat` (counters at UInt64.max, negative-looking ones).
    @Test func forgedProcFilesDoNotBringTheServerDown() async throws {
        let server = try await TestServer.start(
            name: "forged-proc", environment: ["OMNIRUN_METRICS_INTERVAL": "1", "OMNIRUN_IDLE_TIMEOUT": "600"])
        do {
            let client = server.client()
            let victim = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let bystander = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let memoryMB = try await client.get("/sandboxes/\(victim)").object["memoryMB"] as? Int ?? 0
            #expect(memoryMB > 0)
            let watch = ResourceWatch(pid: server.process.processIdentifier, directory: server.dataDirectory)
            let forge = try await Self.run(
                client, victim,
                """
                printf 'MemTotal:       17000000000000000 kB\\nMemFree:        1 kB\\nMemAvailable:   1 kB\\n' > /run/meminfo
                printf 'cpu  18446744073709551615 18446744073709551615 18446744073709551615 1 1 18446744073709551615 -1 -9223372036854775808 0 0\\ncpu0 1 1 1 1 1 1 1 1 0 0\\n' > /run/stat
                mount --bind /run/meminfo /proc/meminfo && mount --bind /run/stat /proc/stat && head -1 /proc/meminfo
                """, user: "root")
            #expect(forge.object["stdout"] as? String == "MemTotal:       17000000000000000 kB\n", "\(forge.text)")
            // Several metrics periods (1 s each), the server answering all along.
            for _ in 0..<6 {
                try await Task.sleep(for: .seconds(1))
                try await Self.expectAlive(server, client, bystander: bystander)
            }
            // Then counters that step back, and a MemTotal past UInt64 itself.
            let again = try await Self.run(
                client, victim,
                """
                printf 'MemTotal:       99999999999999999999999 kB\\nMemAvailable: 18446744073709551615 kB\\n' > /run/meminfo
                printf 'cpu  1 1 1 1 1 1 1 1 0 0\\n' > /run/stat
                head -1 /proc/meminfo
                """, user: "root")
            #expect(again.object["exit_code"] as? Int == 0, "\(again.text)")
            for _ in 0..<4 {
                try await Task.sleep(for: .seconds(1))
                try await Self.expectAlive(server, client, bystander: bystander)
            }
            let samples = try await client.get("/sandboxes/\(victim)/metrics").array
            #expect(samples.count >= 5, "the sampler kept sampling the forger: \(samples.count)")
            let limit = Int64(memoryMB) << 20
            for sample in samples {
                let total = (sample["mem_total"] as? NSNumber)?.int64Value ?? -1
                let used = (sample["mem_used"] as? NSNumber)?.int64Value ?? -1
                let cpu = (sample["cpu_used_pct"] as? NSNumber)?.doubleValue ?? -1
                #expect(total >= 0 && total <= limit && used >= 0 && used <= total, "\(sample)")
                #expect(cpu >= 0 && cpu <= 100, "\(sample)")
            }
            #expect(samples.contains { ($0["mem_total"] as? NSNumber)?.int64Value == limit }, "the forged MemTotal is clamped to the machine's memory")
            #expect(server.fullLog().contains("reported metrics its machine cannot have"))
            #expect(try await client.get("/sandboxes/\(victim)").status == 200, "forging its own figures is not a reason to end it")
            let report = await watch.finish()
            reportFigures("server: forged /proc/meminfo + /proc/stat, 10 metrics periods", report, outcome: "clamped; server up")
            #expect(report.descriptors.after <= report.descriptors.before + 8, "\(report)")
            _ = try await client.delete("/sandboxes/\(victim)")
            _ = try await client.delete("/sandboxes/\(bystander)")
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    /// The agent socket of sandbox `id` of `server` (where QEMU's chardev listens).
    static func agentSocket(_ server: TestServer, _ id: String) -> String {
        MachineSockets.path(server.dataDirectory + "/sandboxes/\(id)", "agent.sock")
    }

    /// Puts a hostile agent where a sandbox's agent socket is (QEMU's socket moves aside,
    /// the machine keeps running): the next server start re-attaches to the hostile one.
    static func swapAgent(
        _ server: TestServer, _ id: String, _ script: @escaping @Sendable (HostileAgent.Request) -> HostileAgent.Answer
    ) async throws -> HostileAgent {
        let path = agentSocket(server, id)
        guard rename(path, path + ".qemu") == 0 else { throw HTTPTestError("cannot move \(path): errno \(errno)") }
        return try await HostileAgent.start(path: path, script: script)
    }

    static func line(_ event: ProcessEvent) -> String {
        String(decoding: (try? JSONEncoder().encode(event)) ?? Data(), as: UTF8.self)
    }

    @Test func aHostileAgentIsContainedAndItsSandboxEndsAsFailed() async throws {
        let server = try await TestServer.start(
            name: "hostile-agent",
            environment: [
                "OMNIRUN_METRICS_INTERVAL": "1", "OMNIRUN_IDLE_TIMEOUT": "600", "OMNIRUN_CONTEXT_OUTPUT_LIMIT": "\(4 << 20)",
            ])
        var agent: HostileAgent?
        do {
            let client = server.client()
            let bad = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let good = try await createSandbox(client, ["template": "playground", "timeout": 0])
            server.crash()
            let terminals = NIOLockedValueBox(0)
            let chunk = [UInt8](repeating: UInt8(ascii: "z"), count: 64 << 10)
            let output = Array((Self.line(ProcessEvent(type: .stdout, pid: 77, data: Data(chunk).base64EncodedString())) + "\n").utf8)
            let contextOutput = Array((#"{"type":"stdout","data":""# + String(repeating: "c", count: 60_000) + "\"}\n").utf8)
            agent = try await Self.swapAgent(server, bad) { request in
                if let honest = HostileAgent.honest(request) { return honest }
                let body = String(decoding: request.body, as: UTF8.self)
                switch request.path {
                case AgentAPI.Path.metrics:
                    return .json(
                        #"{"cpuBusyTicks":18446744073709551615,"cpuTotalTicks":18446744073709551615,"cpuCount":9223372036854775807,"memTotalBytes":18446744073709551615,"memUsedBytes":18446744073709551615,"diskTotalBytes":18446744073709551615,"diskUsedBytes":18446744073709551615,"uptimeMillis":-9223372036854775808}"#
                    )
                case AgentAPI.Path.processStart where body.contains("\"pty\":{"):
                    // Every terminal gets the same pid; the second one's output is forged.
                    let count = terminals.withLockedValue { $0 += 1; return $0 }
                    let text = count == 1 ? "first-terminal\r\n" : "forged-terminal\r\n"
                    return .lines(
                        [
                            Self.line(ProcessEvent(type: .start, pid: 4242)),
                            Self.line(ProcessEvent(type: .pty, pid: 4242, data: Data(text.utf8).base64EncodedString())),
                        ], hold: true)
                case AgentAPI.Path.processStart:
                    return .endless(headers: [("content-type", AgentAPI.eventStreamContentType)], chunk: output)
                case AgentAPI.Path.fileStat:
                    return .json(
                        #"{"name":"x\r\nSet-Cookie: evil=1","path":"/x","type":"file","size":9223372036854775807,"mode":4294967295,"modifiedMillis":-9223372036854775808,"owner":"root"}"#
                    )
                case AgentAPI.Path.fileRead:
                    return .endless(headers: [("x-file-size", "-9223372036854775808")], chunk: chunk)
                case ContextsAPI.path where body.contains("\"execute\""):
                    return .endless(headers: [("content-type", AgentAPI.eventStreamContentType)], chunk: contextOutput)
                case ContextsAPI.path:
                    return .lines([#"{"type":"contexts","contexts":[]}"#])
                case DesktopAPI.Path.capture:
                    return .reply(headers: [(DesktopAPI.widthHeader, "\(Int.max)"), (DesktopAPI.heightHeader, "\(Int.max)")], body: [])
                default:
                    return .json("{}")
                }
            }
            try await server.restart()
            let hostile = try #require(agent)
            let watch = ResourceWatch(pid: server.process.processIdentifier, directory: server.dataDirectory)
            #expect(try await client.get("/sandboxes/\(bad)").status == 200, "re-attached to the hostile agent")
            try await Self.expectAlive(server, client, bystander: good)

            // Metrics at UInt64.max and Int.max, every second: clamped.
            try await Task.sleep(for: .seconds(3))
            let samples = try await client.get("/sandboxes/\(bad)/metrics").array
            #expect(!samples.isEmpty)
            for sample in samples {
                #expect(((sample["mem_total"] as? NSNumber)?.int64Value ?? .max) <= 64 << 30, "\(sample)")
                #expect(((sample["cpu_count"] as? NSNumber)?.intValue ?? .max) <= 64, "\(sample)")
            }

            // A command whose output never ends: 413 at 64 MiB, the server up.
            let command = try await client.request("POST", "/sandboxes/\(bad)/commands", json: ["command": "yes"], timeout: 300)
            #expect(command.status == 413, "\(command.text.prefix(300))")
            // A text read without end: 413 at its limit; a stat with extreme numbers and a name with a newline.
            #expect(try await client.get("/sandboxes/\(bad)/files?path=%2Fx").status == 413)
            let info = try await client.get("/sandboxes/\(bad)/files/info?path=%2Fx")
            #expect(info.status == 200 || info.status == 404, "\(info.text)")
            // A download without end, abandoned by its client: the server lets go of the guest.
            let received = try await RawHTTPClient.with(port: server.port) { connection in
                try await connection.send(
                    "GET /sandboxes/\(bad)/files/download?path=%2Fx HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: \(server.ownerKey)\r\n\r\n")
                while connection.received < 8 << 20 {
                    guard try await connection.fill() else { break }
                }
                // The guest's file name with a CR LF in it stays inside its header.
                let head = String(decoding: connection.buffer.readableBytesView.prefix(2000), as: UTF8.self)
                let lines = head.components(separatedBy: "\r\n\r\n").first?.components(separatedBy: "\r\n") ?? []
                #expect(!lines.contains { $0.lowercased().hasPrefix("set-cookie") }, "\(lines)")
                return connection.received
            }
            #expect(received >= 8 << 20)
            try await Task.sleep(for: .seconds(2))
            let sentAfterClose = hostile.bytesSent
            try await Task.sleep(for: .seconds(2))
            #expect(hostile.bytesSent - sentAfterClose < 1 << 20, "the guest's endless file is no longer read")
            // A context's output without end: 413 at the (4 MiB) limit.
            let execute = try await client.request(
                "POST", "/sandboxes/\(bad)/contexts/ctx_0123456789abcdef/execute", json: ["code": "1"], timeout: 300)
            #expect(execute.status == 413, "\(execute.text.prefix(300))")

            // Two terminals with one pid: the second is refused and cannot write into the first.
            let first = try await client.post("/sandboxes/\(bad)/pty", ["cols": 80, "rows": 24])
            #expect(first.object["pid"] as? Int == 4242, "\(first.text)")
            let second = try await client.post("/sandboxes/\(bad)/pty", ["cols": 80, "rows": 24])
            #expect(second.status == 502, "\(second.text)")
            var text = ""
            for _ in 0..<20 where !text.contains("first-terminal") {
                text += try await client.get("/sandboxes/\(bad)/pty/4242/read").object["data"] as? String ?? ""
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(text.contains("first-terminal") && !text.contains("forged"), "\(text)")
            #expect(try await client.get("/sandboxes/\(bad)/pty").array.count == 1)
            try await Self.expectAlive(server, client, bystander: good)

            // A capture of Int.max × Int.max pixels: an answer no agent sends. The call fails,
            // the sandbox ends as failed and its machine stops; the other one carries on.
            let screenshot = try await client.get("/sandboxes/\(bad)/desktop/screenshot")
            #expect(screenshot.status == 502, "\(screenshot.text)")
            var gone = false
            for _ in 0..<50 where !gone {
                try await Task.sleep(for: .milliseconds(200))
                gone = try await client.get("/sandboxes/\(bad)").status == 404
            }
            #expect(gone, "the lying sandbox ended")
            let ended = try await client.get("/sandboxes/history").array.first { $0["sandboxID"] as? String == bad }
            let reason = ended?["endReason"] as? String ?? ""
            #expect(reason.hasPrefix("failed: agent protocol violation:") && reason.contains("capture"), "\(reason)")
            #expect(hostProcesses(matching: server.dataDirectory + "/sandboxes/\(bad)/").isEmpty, "its QEMU is gone")
            try await Self.expectAlive(server, client, bystander: good)
            let report = await watch.finish(settle: .seconds(2))
            reportFigures(
                "server: hostile agent (extreme metrics, endless command/file/context/download, forged PTY pid, Int.max capture)",
                report, outcome: "bounded; sandbox failed; server up")
            #expect(report.descriptors.after <= report.descriptors.before + 8, "\(report)")
            #expect(report.residentMiB.after - report.residentMiB.before < 300, "\(report)")
            _ = try await client.delete("/sandboxes/\(good)")
        } catch {
            Issue.record("server log: \(server.log())")
            await agent?.stop()
            await server.shutdown()
            throw error
        }
        await agent?.stop()
        await server.shutdown()
    }

    /// Recovery never crash-loops: a re-attach whose agent lies is `lost` at once; one
    /// whose agent stalls and whose server dies while waiting, twice, is not tried again;
    /// the sandbox re-attached beside it each time is kept.
    @Test func recoveryGivesUpOnHostileAndStalledAgents() async throws {
        let server = try await TestServer.start(name: "hostile-recovery", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
        var agents: [HostileAgent] = []
        do {
            let client = server.client()
            let good = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let liar = try await createSandbox(client, ["template": "playground", "timeout": 0])
            let staller = try await createSandbox(client, ["template": "playground", "timeout": 0])
            server.crash()
            agents.append(try await Self.swapAgent(server, liar) { _ in .json(#"{"apiVersion":"two","uptimeMillis":-1}"#) })
            let stalled = try await Self.swapAgent(server, staller) { _ in .stall }
            agents.append(stalled)
            // Two starts die while the staller's re-attach waits for its agent.
            for strike in 1...SandboxRuntime.interruptedStrikes {
                let before = stalled.requests.count
                try await server.restart(waitUntilReady: false)
                var asked = false
                for _ in 0..<300 where !asked {
                    try await Task.sleep(for: .milliseconds(100))
                    asked = stalled.requests.count > before
                }
                #expect(asked, "start \(strike) re-attaches the stalled sandbox")
                // The well-behaved sandbox's re-attach ends before the crash: a start that dies
                // while it is attaching counts against it too (on a loaded machine it can
                // still be waiting for its agent when the staller is asked).
                let marker = server.dataDirectory + "/sandboxes/\(good)/reattach-attempts"
                var settled = false
                for _ in 0..<600 where !settled {
                    settled = ((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "").hasPrefix("probation 0 \(strike - 1)")
                    if !settled { try await Task.sleep(for: .milliseconds(100)) }
                }
                #expect(settled, "start \(strike) re-attaches the well-behaved sandbox")
                server.crash()
            }
            let started = ContinuousClock.now
            try await server.restart()
            let took = ContinuousClock.now - started
            let watch = ResourceWatch(pid: server.process.processIdentifier, directory: server.dataDirectory)
            #expect(took < .seconds(25), "the third start does not wait for the stalled agent again: \(took)")
            let history = try await client.get("/sandboxes/history").array
            for id in [liar, staller] {
                #expect(try await client.get("/sandboxes/\(id)").status == 404)
                #expect(history.contains { $0["sandboxID"] as? String == id && $0["endReason"] as? String == "lost" }, "\(id): \(history)")
                #expect(hostProcesses(matching: server.dataDirectory + "/sandboxes/\(id)/").isEmpty, "\(id)'s QEMU is gone")
            }
            #expect(server.fullLog().contains("it is not re-attached again"))
            let echo = try await Self.run(client, good, "echo survived")
            #expect(echo.object["stdout"] as? String == "survived\n", "\(echo.text)")
            reportFigures("server: lying/stalled agents at recovery, 3 starts (the last start)", await watch.finish(), outcome: "lost; no crash loop")
            _ = try await client.delete("/sandboxes/\(good)")
        } catch {
            Issue.record("server log: \(server.log())")
            for agent in agents { await agent.stop() }
            await server.shutdown()
            throw error
        }
        for agent in agents { await agent.stop() }
        await server.shutdown()
    }

    /// Terminal output buffered on the server goes when its terminal, and its sandbox, end.
    @Test func terminalBuffersAreFreedWhenTerminalsAndSandboxesEnd() async throws {
        let server = try await TestServer.start(name: "pty-buffers", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
        do {
            let client = server.client()
            let id = try await createSandbox(client, ["template": "playground", "timeout": 0])
            func gauge(_ name: String) async throws -> Double {
                let text = try await client.get("/metrics").text
                let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
                return Double(line?.split(separator: " ").last ?? "") ?? -1
            }
            let watch = ResourceWatch(pid: server.process.processIdentifier)
            var pids: [Int] = []
            for _ in 0..<4 {
                let created = try await client.post("/sandboxes/\(id)/pty", ["cols": 120, "rows": 40])
                let pid = created.object["pid"] as? Int ?? 0
                #expect(pid > 0, "\(created.text)")
                pids.append(pid)
                _ = try await client.post("/sandboxes/\(id)/pty/\(pid)/input", ["data": "head -c 2000000 /dev/zero | tr '\\\\0' x; echo; echo done-$$\n"])
            }
            var buffered = 0.0
            for _ in 0..<240 where buffered < 8_000_000 {
                try await Task.sleep(for: .milliseconds(500))
                buffered = try await gauge("omnirun_terminal_buffered_bytes")
            }
            #expect(buffered >= 8_000_000, "four terminals' output is buffered: \(buffered)")
            try await Task.sleep(for: .seconds(1))
            buffered = try await gauge("omnirun_terminal_buffered_bytes")
            #expect(try await gauge("omnirun_terminal_sessions") == 4)
            // One terminal exits and is read: its buffer goes.
            _ = try await client.post("/sandboxes/\(id)/pty/\(pids[0])/input", ["data": "exit\n"])
            var ended = false
            for _ in 0..<100 where !ended {
                try await Task.sleep(for: .milliseconds(200))
                ended = try await client.get("/sandboxes/\(id)/pty").array.contains { $0["pid"] as? Int == pids[0] && $0["running"] as? Bool == false }
            }
            #expect(ended)
            let last = try await client.get("/sandboxes/\(id)/pty/\(pids[0])/read").object["data"] as? String ?? ""
            #expect(last.utf8.count > 1_000_000)
            let afterRead = try await gauge("omnirun_terminal_buffered_bytes")
            #expect(afterRead <= buffered - 1_900_000, "\(afterRead) of \(buffered)")
            // The sandbox ends: every session and byte of it goes.
            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await gauge("omnirun_terminal_buffered_bytes") == 0)
            #expect(try await gauge("omnirun_terminal_sessions") == 0)
            reportFigures("server: 4 terminals × 2 MB of output, then the sandbox killed", await watch.finish(), outcome: "bounded; freed at end")
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
