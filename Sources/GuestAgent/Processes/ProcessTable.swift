import AgentProtocol
import Logging
import NIOCore

/// Every process the agent started: its output (kept for replay, bounded), its
/// subscribers, its input sink and its exit. Finished processes stay listed until
/// evicted, so a caller can still read how they ended.
actor ProcessTable {
    struct Record {
        var info: GuestProcessInfo
        var log: [(kind: ProcessEvent.Kind, bytes: [UInt8])] = []
        var logBytes = 0
        var truncated = false
        var subscribers: [Int: AsyncStream<ProcessEvent>.Continuation] = [:]
        var input: (any Channel)?
        var ptyMaster: Int32?
        var openOutputs = 0
        var exited = false
        var ended = false
        var error: String?
        var spawnedMicros: Int64 = Clock.monotonicMicros()
        var exitedMicros: Int64?
        /// Output not recorded yet (see `PendingOutput`); the exit grace waits for it.
        var pendingOutput: PendingOutput?
        var graceRounds = 0
    }

    private var records: [Int32: Record] = [:]
    private var finishedOrder: [Int32] = []
    private var tags: [String: Int32] = [:]
    private var earlyExits: [Int32: Int32] = [:]
    private var nextSubscriber = 0
    private let maxLogBytes: Int
    private let maxFinished: Int
    private let exitGraceMillis: Int64
    private let logger: Logger

    init(maxLogBytes: Int = 16 << 20, maxFinished: Int = 512, exitGraceMillis: Int64 = 250, logger: Logger) {
        self.maxLogBytes = maxLogBytes
        self.maxFinished = maxFinished
        self.exitGraceMillis = exitGraceMillis
        self.logger = logger
    }

    var runningCount: Int { records.values.filter { !$0.exited }.count }

    func register(
        _ info: GuestProcessInfo, input: (any Channel)?, ptyMaster: Int32?, outputs: Int, spawnedMicros: Int64,
        pendingOutput: PendingOutput? = nil
    ) throws {
        if let tag = info.tag {
            if let other = tags[tag], let record = records[other], !record.ended {
                throw AgentFailure.conflict("a running process already has tag '\(tag)'")
            }
            tags[tag] = info.pid
        }
        var record = Record(info: info)
        record.input = input
        record.ptyMaster = ptyMaster
        record.openOutputs = outputs
        record.pendingOutput = pendingOutput
        record.spawnedMicros = spawnedMicros
        records[info.pid] = record
        if let status = earlyExits.removeValue(forKey: info.pid) {
            reaped(pid: info.pid, status: status)
        }
    }

    func resolve(_ selector: ProcessSelector) throws -> Int32 {
        if let pid = selector.pid {
            guard records[pid] != nil else { throw AgentFailure.notFound("no process with pid \(pid)") }
            return pid
        }
        if let tag = selector.tag {
            guard let pid = tags[tag], records[pid] != nil else {
                throw AgentFailure.notFound("no process with tag '\(tag)'")
            }
            return pid
        }
        throw AgentFailure.badRequest("a pid or a tag is required")
    }

    /// A stream of the process's events: `start`, the kept output (if `replay`), then
    /// live output, and `end` once the process has exited and its output drained.
    func subscribe(pid: Int32, replay: Bool) throws -> AsyncStream<ProcessEvent> {
        guard let record = records[pid] else { throw AgentFailure.notFound("no process with pid \(pid)") }
        let (stream, continuation) = AsyncStream<ProcessEvent>.makeStream()
        continuation.yield(ProcessEvent(type: .start, pid: pid, timestampMillis: record.info.startedAtMillis))
        if replay {
            if record.truncated { continuation.yield(ProcessEvent(type: .truncated, pid: pid)) }
            for chunk in record.log {
                continuation.yield(ProcessEvent(type: chunk.kind, data: AgentCoding.base64(chunk.bytes)))
            }
        }
        if record.ended {
            continuation.yield(endEvent(record))
            continuation.finish()
            return stream
        }
        let id = nextSubscriber
        nextSubscriber += 1
        records[pid]?.subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(pid: pid, id: id) }
        }
        return stream
    }

    private func unsubscribe(pid: Int32, id: Int) {
        records[pid]?.subscribers[id] = nil
    }

    func output(pid: Int32, kind: ProcessEvent.Kind, bytes: [UInt8]) {
        guard var record = records[pid], !record.ended, !bytes.isEmpty else { return }
        record.log.append((kind, bytes))
        record.logBytes += bytes.count
        while record.logBytes > maxLogBytes, !record.log.isEmpty {
            record.logBytes -= record.log.removeFirst().bytes.count
            record.truncated = true
        }
        let event = ProcessEvent(type: kind, data: AgentCoding.base64(bytes))
        for continuation in record.subscribers.values { continuation.yield(event) }
        records[pid] = record
    }

    func outputClosed(pid: Int32) {
        guard records[pid] != nil else { return }
        records[pid]!.openOutputs -= 1
        finishIfDone(pid)
    }

    /// Called by the reaper with the raw wait status.
    func reaped(pid: Int32, status: Int32) {
        guard records[pid] != nil else {
            // Either an orphan the agent inherited or a child not registered yet.
            earlyExits[pid] = status
            if earlyExits.count > 4096 { earlyExits.removeAll() }
            return
        }
        let termSignal = status & 0x7f
        if termSignal == 0 {
            records[pid]!.info.exitCode = (status >> 8) & 0xff
        } else {
            records[pid]!.info.signal = termSignal
            records[pid]!.info.exitCode = 128 + termSignal
        }
        records[pid]!.info.running = false
        records[pid]!.exitedMicros = Clock.monotonicMicros()
        records[pid]!.info.endedAtMillis = Clock.nowMillis()
        records[pid]!.exited = true
        if let tag = records[pid]!.info.tag, tags[tag] == pid { tags[tag] = nil }
        finishIfDone(pid)
        if !records[pid]!.ended { startGrace(pid) }
    }

    /// Output pipes may be held open by a background grandchild: the process ends
    /// `exitGraceMillis` after its exit even if they are. Not before what it wrote has
    /// been recorded, though: on a busy machine its last output can still be in the pipe
    /// or on its way (it was lost once), so the grace is renewed while some is, up to
    /// `maxGraceRounds` times (a grandchild may write for ever).
    private func startGrace(_ pid: Int32) {
        let grace = exitGraceMillis
        Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(grace))
            await self?.graceExpired(pid: pid)
        }
    }

    static let maxGraceRounds = 40

    private func graceExpired(pid: Int32) {
        guard let record = records[pid], record.exited, !record.ended else { return }
        if record.pendingOutput?.isPending == true, record.graceRounds < Self.maxGraceRounds {
            records[pid]!.graceRounds += 1
            startGrace(pid)
            return
        }
        end(pid)
    }

    func timedOut(pid: Int32) {
        guard let record = records[pid], !record.exited else { return }
        records[pid]!.error = "timeout"
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        logger.info("process timed out", metadata: ["pid": "\(pid)"])
    }

    private func finishIfDone(_ pid: Int32) {
        guard let record = records[pid], record.exited, !record.ended, record.openOutputs <= 0 else { return }
        end(pid)
    }

    private func end(_ pid: Int32) {
        guard var record = records[pid] else { return }
        record.ended = true
        let event = endEvent(record)
        for continuation in record.subscribers.values {
            continuation.yield(event)
            continuation.finish()
        }
        record.subscribers.removeAll()
        if let input = record.input {
            record.input = nil
            input.close(promise: nil)
        }
        if let fd = record.ptyMaster {
            record.ptyMaster = nil
            close(fd)
        }
        records[pid] = record
        finishedOrder.append(pid)
        while finishedOrder.count > maxFinished {
            records[finishedOrder.removeFirst()] = nil
        }
    }

    private func endEvent(_ record: Record) -> ProcessEvent {
        ProcessEvent(
            type: .end, pid: record.info.pid, exitCode: record.info.exitCode, signal: record.info.signal,
            error: record.error, timestampMillis: record.info.endedAtMillis,
            durationMicros: record.exitedMicros.map { $0 - record.spawnedMicros })
    }

    func inputSink(pid: Int32) throws -> (any Channel)? {
        guard let record = records[pid] else { throw AgentFailure.notFound("no process with pid \(pid)") }
        if record.ended { throw AgentFailure.conflict("process \(pid) has exited") }
        return record.input
    }

    func closeInput(pid: Int32) throws {
        guard let record = records[pid] else { throw AgentFailure.notFound("no process with pid \(pid)") }
        if record.ptyMaster != nil {
            // A terminal has no separate stdin to close: send end-of-file (^D) instead.
            if let input = record.input {
                input.writeAndFlush(ByteBuffer(bytes: [4]), promise: nil)
            }
            return
        }
        records[pid]!.input = nil
        record.input?.close(promise: nil)
    }

    func ptyMaster(pid: Int32) throws -> Int32 {
        guard let record = records[pid] else { throw AgentFailure.notFound("no process with pid \(pid)") }
        guard let fd = record.ptyMaster, !record.ended else {
            throw AgentFailure.conflict("process \(pid) has no terminal")
        }
        return fd
    }

    func signal(pid: Int32, signal: Int32) throws {
        guard let record = records[pid] else { throw AgentFailure.notFound("no process with pid \(pid)") }
        if record.exited { return }
        // Signal the whole process group (every process runs in its own session).
        if kill(-pid, signal) != 0 { kill(pid, signal) }
    }

    func output(pid: Int32) throws -> ProcessOutput {
        guard let record = records[pid] else { throw AgentFailure.notFound("no process with pid \(pid)") }
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        for chunk in record.log {
            if chunk.kind == .stderr { stderr += chunk.bytes } else { stdout += chunk.bytes }
        }
        var info = record.info
        // Running until its output is drained too, so a caller that saw `running: false` has it all.
        info.running = !record.ended
        return ProcessOutput(
            info: info, stdout: AgentCoding.base64(stdout), stderr: AgentCoding.base64(stderr), truncated: record.truncated)
    }

    func list(includeFinished: Bool) -> [GuestProcessInfo] {
        records.values.filter { includeFinished || !$0.exited }.map(\.info).sorted { $0.pid < $1.pid }
    }

    /// Forgets processes that have ended (a restored guest taking a new identity
    /// must not list what ran before it).
    func forgetFinished() {
        for pid in finishedOrder { records[pid] = nil }
        finishedOrder.removeAll()
        earlyExits.removeAll()
    }

    func killAll(signal: Int32) {
        for (pid, record) in records where !record.exited {
            kill(-pid, signal)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension ProcessTable {
    /// Forgets one ended process at once (the agent's own helpers, e.g. the desktop's tools).
    func discard(pid: Int32) {
        guard let record = records[pid], record.ended else { return }
        records[pid] = nil
        finishedOrder.removeAll { $0 == pid }
    }
}
