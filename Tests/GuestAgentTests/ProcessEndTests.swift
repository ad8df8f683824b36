import AgentProtocol
import CAgentSupport
import Foundation
import Logging
import Testing

@testable import GuestAgent

/// A process that has exited ends (its `end` event, `running: false`) once its output is
/// recorded — not while its last bytes are still in the pipe on a busy machine — and
/// still ends, after a bounded wait, when a background child keeps the pipe open.
@Suite("Guest agent: the end of a process")
struct ProcessEndTests {
    static func info(_ pid: Int32) -> GuestProcessInfo {
        GuestProcessInfo(
            pid: pid, tag: nil, command: "test", user: "root", cwd: "/", pty: false, running: true, exitCode: nil, signal: nil,
            startedAtMillis: 0, endedAtMillis: nil)
    }

    static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        let rc = fds.withUnsafeMutableBufferPointer { omr_pipe_cloexec($0.baseAddress) }
        try #require(rc == 0)
        return (fds[0], fds[1])
    }

    /// Polls until the process has ended (or 20 s): timers are late on a loaded machine.
    static func waitForEnd(_ table: ProcessTable, _ pid: Int32) async throws -> Bool {
        let started = ContinuousClock.now
        while try await table.output(pid: pid).info.running {
            guard ContinuousClock.now - started < .seconds(20) else { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    @Test func outputStillInThePipeDelaysTheEndUntilItIsRecorded() async throws {
        // Up to 40 renewals of 250 ms: 10 s that a 400 ms wait cannot outlast.
        let table = ProcessTable(exitGraceMillis: 250, logger: Logger(label: "test"))
        let (readEnd, writeEnd) = try Self.pipe()
        defer { close(readEnd) }
        let pending = PendingOutput(descriptors: [readEnd])
        let pid: Int32 = 4_000_001
        try await table.register(Self.info(pid), input: nil, ptyMaster: nil, outputs: 1, spawnedMicros: 0, pendingOutput: pending)
        // The process wrote its last line and exited; its pipe has not been read yet.
        _ = "yes sb-test\n".withCString { write(writeEnd, $0, 12) }
        close(writeEnd)
        await table.reaped(pid: pid, status: 0)
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await table.output(pid: pid).info.running, "ended with its output still in the pipe")
        // The reader catches up: the bytes are recorded, then the pipe's end.
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(readEnd, &buffer, 64)
        pending.read(count)
        await table.output(pid: pid, kind: .stdout, bytes: Array(buffer.prefix(count)))
        pending.recorded(count)
        pending.closed(readEnd)
        await table.outputClosed(pid: pid)
        let output = try await table.output(pid: pid)
        #expect(!output.info.running && output.info.exitCode == 0)
        #expect(String(decoding: try AgentCoding.unbase64(output.stdout), as: UTF8.self) == "yes sb-test\n")
    }

    @Test func aPipeHeldOpenByABackgroundChildEndsAfterTheGrace() async throws {
        let table = ProcessTable(exitGraceMillis: 50, logger: Logger(label: "test"))
        let (readEnd, writeEnd) = try Self.pipe()
        defer {
            close(readEnd)
            close(writeEnd)
        }
        let pending = PendingOutput(descriptors: [readEnd])
        let pid: Int32 = 4_000_002
        try await table.register(Self.info(pid), input: nil, ptyMaster: nil, outputs: 1, spawnedMicros: 0, pendingOutput: pending)
        await table.reaped(pid: pid, status: 0)
        #expect(try await Self.waitForEnd(table, pid))
    }

    @Test func aChildThatWritesForEverDoesNotHoldTheEndForEver() async throws {
        let table = ProcessTable(exitGraceMillis: 10, logger: Logger(label: "test"))
        let (readEnd, writeEnd) = try Self.pipe()
        defer {
            close(readEnd)
            close(writeEnd)
        }
        let pending = PendingOutput(descriptors: [readEnd])
        let pid: Int32 = 4_000_003
        try await table.register(Self.info(pid), input: nil, ptyMaster: nil, outputs: 1, spawnedMicros: 0, pendingOutput: pending)
        // Bytes that nobody reads stay in the pipe: pending for ever.
        _ = "x".withCString { write(writeEnd, $0, 1) }
        await table.reaped(pid: pid, status: 0)
        let started = ContinuousClock.now
        #expect(try await Self.waitForEnd(table, pid))
        #expect(ContinuousClock.now - started >= .milliseconds(10 * ProcessTable.maxGraceRounds))
    }
}
