import AgentClient
import AgentProtocol
import Foundation
import NIOConcurrencyHelpers
import OmniRunError
import Testing
import TestSupport

@testable import SandboxRuntime

@Suite("Commands in a restored sandbox", .timeLimit(.minutes(5)))
struct CommandTests {
    @Test func pythonPrintsAndExits() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let result = try await sandbox.run("python3 -c 'import sys; print(6 * 7); sys.exit(3)'")
            #expect(result.stdoutText == "42\n")
            #expect(result.exitCode == 3)
            #expect(result.stderr.isEmpty)
        }
    }

    @Test func stderrAndExitCodesKeptApart() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let result = try await sandbox.run("echo out; echo err >&2; exit 7")
            #expect(result.stdoutText == "out\n")
            #expect(result.stderrText == "err\n")
            #expect(result.exitCode == 7)
            let ok = try await sandbox.run("true")
            #expect(ok.exitCode == 0)
        }
    }

    @Test func runsAsUserByDefaultAndRootOnRequest() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let user = try await sandbox.run("id -un; echo $HOME; pwd")
            #expect(user.stdoutText == "user\n/home/user\n/home/user\n")
            let root = try await sandbox.run("id -u", user: "root")
            #expect(root.stdoutText == "0\n")
            let cwd = try await sandbox.agent.run(ProcessStartRequest(shell: "pwd", cwd: "/tmp"))
            #expect(cwd.stdoutText == "/tmp\n")
        }
    }

    @Test func missingCommandIs127AndMissingExecutableIsNotFound() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let result = try await sandbox.run("no-such-command-here")
            #expect(result.exitCode == 127)
            #expect(result.stderrText.contains("not found"))
            await #expect(throws: OmniRunError.self) {
                _ = try await sandbox.agent.run(ProcessStartRequest(argv: ["/no/such/binary"]))
            }
            do {
                _ = try await sandbox.agent.run(ProcessStartRequest(argv: ["no-such-binary"]))
                Issue.record("expected an error")
            } catch let error as OmniRunError {
                #expect(error.code == .notFound)
            }
        }
    }

    @Test func environmentReachesProcesses() async throws {
        let spec = SandboxSpec(template: "playground", env: ["SANDBOX_WIDE": "yes"])
        try await TestRuntime.withSandbox(spec) { sandbox in
            let result = try await sandbox.agent.run(
                ProcessStartRequest(shell: "echo $SANDBOX_WIDE $PER_CALL $OMNIRUN_SANDBOX_ID", env: ["PER_CALL": "also"]))
            #expect(result.stdoutText == "yes also \(sandbox.id)\n")
        }
    }

    @Test func stdinRoundTrip() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let output = NIOLockedValueBox<[UInt8]>([])
            let ended = AsyncStream<Int32>.makeStream()
            let pid = try await sandbox.agent.startDetached(ProcessStartRequest(shell: "cat | tr a-z A-Z", stdin: true)) {
                event in
                if let bytes = event.bytes { output.withLockedValue { $0 += bytes } }
                if event.type == .end { ended.continuation.yield(event.exitCode ?? -1) }
            }
            try await sandbox.agent.sendInput(pid: pid, data: Array("hello stdin\n".utf8))
            try await sandbox.agent.sendInput(pid: pid, data: Array("second line".utf8), close: true)
            var exit: Int32 = -1
            for await code in ended.stream {
                exit = code
                break
            }
            #expect(exit == 0)
            #expect(String(decoding: output.withLockedValue { $0 }, as: UTF8.self) == "HELLO STDIN\nSECOND LINE")
        }
    }

    @Test func oneMebibyteOfOutputStreamsIntact() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let script = "import sys\nfor i in range(16384): sys.stdout.write('%063d\\n' % i)"
            _ = try await sandbox.agent.writeFile(path: "/tmp/gen.py", bytes: Array(script.utf8))
            let result = try await sandbox.run("python3 /tmp/gen.py")
            #expect(result.exitCode == 0)
            #expect(result.stdout.count == 1 << 20)
            let lines = result.stdoutText.split(separator: "\n")
            #expect(lines.count == 16384)
            #expect(lines.enumerated().allSatisfy { Int($0.element) == $0.offset })
        }
    }

    @Test func backgroundProcessOutlivesItsCallerAndCanBeReattached() async throws {
        try await TestRuntime.withSandbox { sandbox in
            // Start, read the first line, then walk away. (15 s: on a loaded host the caller's
            // task took more than 6 s to wind down, and a finished ticker is not "running".)
            let firstLine = AsyncStream<String>.makeStream()
            let caller = Task {
                try await sandbox.agent.startProcess(
                    ProcessStartRequest(shell: "for i in $(seq 1 15); do echo tick $i; sleep 1; done", tag: "ticker")
                ) { event in
                    if event.type == .stdout, let bytes = event.bytes {
                        firstLine.continuation.yield(String(decoding: bytes, as: UTF8.self))
                        throw CancellationError()  // the caller goes away
                    }
                }
            }
            var seen = ""
            for await line in firstLine.stream {
                seen = line
                break
            }
            #expect(seen.hasPrefix("tick 1"))
            _ = await caller.result
            let running = try await sandbox.agent.listProcesses()
            #expect(running.contains { $0.tag == "ticker" && $0.running })
            // Re-attach by tag: the replay holds everything from the start, then the end.
            let result = NIOLockedValueBox<(String, Int32?)>(("", nil))
            try await sandbox.agent.connectProcess(ProcessSelector(tag: "ticker")) { event in
                result.withLockedValue { value in
                    if let bytes = event.bytes { value.0 += String(decoding: bytes, as: UTF8.self) }
                    if event.type == .end { value.1 = event.exitCode }
                }
            }
            let (text, code) = result.withLockedValue { $0 }
            #expect(text == (1...15).map { "tick \($0)\n" }.joined())
            #expect(code == 0)
        }
    }

    @Test func signalKillsProcessGroup() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let ended = AsyncStream<ProcessEvent>.makeStream()
            let pid = try await sandbox.agent.startDetached(ProcessStartRequest(shell: "sleep 100; echo never")) { event in
                if event.type == .end { ended.continuation.yield(event) }
            }
            try await sandbox.agent.signal(pid: pid, signal: 9)
            var end: ProcessEvent?
            for await event in ended.stream {
                end = event
                break
            }
            #expect(end?.signal == 9)
            #expect(end?.exitCode == 137)
        }
    }

    @Test func timeoutKillsTheProcess() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let result = try await sandbox.agent.run(ProcessStartRequest(shell: "sleep 30", timeoutMillis: 500))
            #expect(result.error == "timeout")
            #expect(result.signal == 9)
        }
    }

    @Test func ptyEchoesInputAndResizes() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let screen = NIOLockedValueBox("")
            let pid = try await sandbox.agent.startDetached(
                ProcessStartRequest(shell: "exec bash --norc -i", pty: PTYSize(cols: 80, rows: 24))
            ) { event in
                if event.type == .pty, let bytes = event.bytes {
                    screen.withLockedValue { $0 += String(decoding: bytes, as: UTF8.self) }
                }
            }
            try await sandbox.agent.sendInput(pid: pid, data: Array("echo pty-$((40+2))\n".utf8))
            try await waitUntil { screen.withLockedValue { $0.contains("pty-42") } }
            #expect(screen.withLockedValue { $0.contains("echo pty-$((40+2))") })  // typed input echoed
            try await sandbox.agent.resize(pid: pid, size: PTYSize(cols: 123, rows: 45))
            try await sandbox.agent.sendInput(pid: pid, data: Array("stty size\n".utf8))
            try await waitUntil { screen.withLockedValue { $0.contains("45 123") } }
            try await sandbox.agent.sendInput(pid: pid, data: Array("exit\n".utf8))
        }
    }
}

/// Polls `condition` every 50 ms for up to `seconds`.
func waitUntil(seconds: Double = 20, _ condition: @Sendable () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("condition not met within \(seconds) s")
    throw CancellationError()
}
