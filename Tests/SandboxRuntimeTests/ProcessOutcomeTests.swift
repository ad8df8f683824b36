import AgentProtocol
import Testing

@testable import AgentClient
@testable import SandboxRuntime

/// How the host reads the agent's report of a process's end (the one place that maps a
/// timeout to exit code 124).
@Suite("Process outcomes")
struct ProcessOutcomeTests {
    @Test func aTimeoutIsExitCode124WhateverTheAgentReportsWithIt() {
        for code: Int32? in [nil, -1, 0, 1, 137, Int32.max, Int32.min] {
            for signal: Int32? in [nil, 0, 9, 15] {
                let outcome = ProcessOutcome(exitCode: code, signal: signal, error: "timeout")
                #expect(outcome == .timedOut, "code \(String(describing: code)), signal \(String(describing: signal))")
                #expect(outcome.exitCode == 124)
            }
        }
        #expect(ProcessOutcome.timeoutExitCode == 124)
    }

    @Test func anExitKeepsTheAgentsCode() {
        #expect(ProcessOutcome(exitCode: 0, signal: nil, error: nil) == .exited(code: 0))
        #expect(ProcessOutcome(exitCode: 3, signal: 0, error: nil) == .exited(code: 3))
        #expect(ProcessOutcome(exitCode: 124, signal: nil, error: nil) == .exited(code: 124), "a command's own 124 is not a timeout")
        #expect(ProcessOutcome(exitCode: Int32.min, signal: nil, error: nil).exitCode == Int32.min)
        #expect(ProcessOutcome(exitCode: nil, signal: nil, error: nil).exitCode == -1, "no code reported reads as -1")
        // An `error` other than a timeout (a process that never ran) keeps the reported code.
        #expect(ProcessOutcome(exitCode: 127, signal: nil, error: "spawn failed") == .exited(code: 127))
    }

    @Test func aSignalIsAKillAndKeepsTheReportedCode() {
        let killed = ProcessOutcome(exitCode: 137, signal: 9, error: nil)
        #expect(killed == .killed(signal: 9, code: 137))
        #expect(killed.exitCode == 137)
        #expect(ProcessOutcome(exitCode: nil, signal: 15, error: nil).exitCode == -1)
        #expect(ProcessOutcome(exitCode: 1, signal: -5, error: nil) == .exited(code: 1), "a negative signal from a guest is no signal")
    }

    @Test func onlyAnEndEventCarriesAnOutcome() {
        for kind in [ProcessEvent.Kind.start, .stdout, .stderr, .pty, .truncated] {
            #expect(ProcessOutcome(ending: ProcessEvent(type: kind, exitCode: 0, error: "timeout")) == nil, "\(kind)")
        }
        #expect(ProcessOutcome(ending: ProcessEvent(type: .end, exitCode: -1, error: "timeout")) == .timedOut)
        #expect(ProcessOutcome(ending: ProcessEvent(type: .end, exitCode: 2)) == .exited(code: 2))
    }

    @Test func aResultReadsItsOutcomeFromTheAgentsReport() {
        let timedOut = ProcessResult(
            CommandResult(pid: 7, stdout: Array("a".utf8), stderr: Array("b".utf8), exitCode: -1, signal: 9, error: "timeout"))
        #expect(timedOut.outcome == .timedOut)
        #expect(timedOut.exitCode == 124)
        #expect(timedOut.stdoutText == "a")
        #expect(timedOut.stderrText == "b")
        #expect(timedOut.pid == 7)
        let exited = ProcessResult(CommandResult(pid: 8, stdout: [], stderr: [], exitCode: 42, durationMicros: 5))
        #expect(exited.outcome == .exited(code: 42))
        #expect(exited.exitCode == 42)
        #expect(exited.durationMicros == 5)
    }
}
