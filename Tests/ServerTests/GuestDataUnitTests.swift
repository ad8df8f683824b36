import AgentProtocol
import Foundation
import OmniRunCore
import OmniRunError
import Testing

@testable import AgentClient
@testable import OmniRunControl
@testable import OmniRunServer

/// The host's own bookkeeping of guest data, alone: terminal buffers keyed by what the
/// host issued, a context's collected output capped, times and nesting bounded.
@Suite("Guest data on the host (units)")
struct GuestDataUnitTests {
    let sandbox = SandboxID.random()
    let other = SandboxID.random()

    @Test func aForgedPidCannotReadOrGrowAnotherTerminal() async throws {
        let sessions = PTYSessions()
        let first = try await sessions.reserve(sandbox, startedAt: 1)
        try await sessions.bind(first, pid: 42)
        await sessions.append(first, Array("mine".utf8))
        // A second terminal whose agent claims the same pid: refused, its output goes nowhere.
        let second = try await sessions.reserve(sandbox, startedAt: 2)
        await #expect(throws: OmniRunError.self) { try await sessions.bind(second, pid: 42) }
        await sessions.append(second, Array("forged".utf8))
        #expect(try await sessions.drain(sandbox, pid: 42) == "mine")
        await sessions.release(second)
        #expect(await sessions.usage(sandbox).sessions == 1)
        // No pid, zero, negative, or a second pid for one terminal: a protocol violation.
        for bad: Int32? in [nil, 0, -1, Int32.min] {
            let token = try await sessions.reserve(sandbox, startedAt: 3)
            do {
                try await sessions.bind(token, pid: bad)
                Issue.record("pid \(String(describing: bad)) was accepted")
            } catch let error as OmniRunError {
                #expect(error.code == .protocolViolation)
            }
            await sessions.release(token)
        }
        await #expect(throws: OmniRunError.self) { try await sessions.bind(first, pid: 43) }
        // Another sandbox's terminal with the same pid is another session.
        let elsewhere = try await sessions.reserve(other, startedAt: 4)
        try await sessions.bind(elsewhere, pid: 42)
        await sessions.append(elsewhere, Array("theirs".utf8))
        #expect(try await sessions.drain(sandbox, pid: 42) == "")
        #expect(try await sessions.drain(other, pid: 42) == "theirs")
    }

    @Test func buffersAreBoundedAndFreedWhenTerminalsAndSandboxesEnd() async throws {
        let sessions = PTYSessions()
        let token = try await sessions.reserve(sandbox, startedAt: 1)
        try await sessions.bind(token, pid: 7)
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 4096)
        for _ in 0..<(12 << 20) / 4096 { await sessions.append(token, chunk) }
        #expect(await sessions.usage(sandbox).bytes <= 2 * PTYSessions.maxBuffered)
        #expect(try await sessions.drain(sandbox, pid: 7).utf8.count == PTYSessions.maxBuffered)
        await sessions.append(token, chunk)
        await sessions.ended(token, exitCode: 0)
        await sessions.append(token, chunk)  // after its end: dropped
        #expect(await sessions.usage(sandbox).bytes == 4096)
        #expect(try await sessions.drain(sandbox, pid: 7).utf8.count == 4096)
        #expect(await sessions.usage(sandbox) == (1, 0), "the last read frees an ended terminal's buffer")
        #expect(await sessions.list(sandbox).first?.running == false)
        // A pid reused after its terminal ended names the new terminal.
        let reused = try await sessions.reserve(sandbox, startedAt: 2)
        try await sessions.bind(reused, pid: 7)
        #expect(await sessions.list(sandbox).count == 1)
        // Live terminals per sandbox are capped; ended ones kept for a last read are too.
        var live: [PTYSessions.Token] = [reused]
        for index in 1..<PTYSessions.maxLive {
            let next = try await sessions.reserve(sandbox, startedAt: 3)
            try await sessions.bind(next, pid: Int32(100 + index))
            live.append(next)
        }
        await #expect(throws: OmniRunError.self) { _ = try await sessions.reserve(sandbox, startedAt: 4) }
        for (index, terminal) in live.enumerated() {
            await sessions.append(terminal, chunk)
            await sessions.ended(terminal, exitCode: Int32(index))
        }
        for index in 0..<10 {
            let next = try await sessions.reserve(sandbox, startedAt: 5)
            try await sessions.bind(next, pid: Int32(500 + index))
            await sessions.ended(next, exitCode: 0)
        }
        #expect(await sessions.usage(sandbox).sessions <= PTYSessions.maxEnded)
        // The sandbox ends: everything of it goes, nothing of the other.
        let kept = try await sessions.reserve(other, startedAt: 6)
        try await sessions.bind(kept, pid: 9)
        await sessions.removeAll(sandbox)
        #expect(await sessions.usage(sandbox) == (0, 0))
        #expect(await sessions.usage(other).sessions == 1)
        await #expect(throws: OmniRunError.self) { _ = try await sessions.drain(sandbox, pid: 7) }
    }

    /// An execution whose events end without `done` (the guest's context service or its
    /// kernel stopped half-way) is a clear 503, never a 200 with an empty answer.
    @Test func aContextExecuteThatEndsWithoutDoneIsAnError() throws {
        let cut = ContextController.Collected(limit: 1 << 20)
        try cut.add(ContextEvent(type: "stdout", data: .string("partial")))
        #expect(throws: OmniRunError.self) { _ = try cut.finished() }
        do {
            _ = try cut.finished()
        } catch let error as OmniRunError {
            #expect(error.code == .unavailable && error.message.contains("stopped before the execution finished"))
        }
        let whole = ContextController.Collected(limit: 1 << 20)
        try whole.add(ContextEvent(type: "stdout", data: .string("fits\n")))
        var done = ContextEvent(type: "done")
        done.executionCount = 3
        try whole.add(done)
        let view = try whole.finished()
        #expect(view.logs.stdout == "fits\n" && view.execution_count == 3)
    }

    @Test func aContextExecuteCollectsAtMostItsLimit() throws {
        #expect(ServerConfiguration(dataDirectory: "/tmp").maxContextOutput == 64 << 20, "the default is a command's 64 MiB")
        let collected = ContextController.Collected(limit: 1 << 20)
        let line = String(repeating: "y", count: 64 << 10)
        var added = 0
        do {
            while added < 4 << 20 {
                try collected.add(ContextEvent(type: "stdout", data: .string(line)))
                added += line.utf8.count
            }
            Issue.record("4 MiB of output were collected under a 1 MiB limit")
        } catch let error as OmniRunError {
            #expect(error.code == .payloadTooLarge)
        }
        #expect(collected.value.logs.stdout.utf8.count <= 1 << 20)
        #expect(added <= (1 << 20) + (64 << 10))
        // Results and errors count as well.
        let results = ContextController.Collected(limit: 100_000)
        let big = JSONValue.object(["png": .string(String(repeating: "A", count: 60_000))])
        try results.add(ContextEvent(type: "result", data: big))
        #expect(throws: OmniRunError.self) { try results.add(ContextEvent(type: "result", data: big)) }
    }

    @Test func timesAndNestingFromTheGuestAreBounded() {
        #expect(isoDate(Int64.max).hasPrefix("9999-12-31T23:59:59"))
        #expect(isoDate(Int64.min).hasPrefix("0001-01-0"))
        #expect(isoDate(0) == "1970-01-01T00:00:00.000Z")
        #expect(JSONNesting.depth(of: Array(#"{"a":[1,{"b":"[[[[["}]}"#.utf8)) == 3)
        #expect(JSONNesting.depth(of: Array(#""\"[[[""#.utf8)) == 0)
        #expect(JSONNesting.depth(of: Array(String(repeating: "[", count: 1_000_000).utf8)) > JSONNesting.maxDepth)
    }
}
