import Foundation

/// The log of one template build: a ring of its last `maxBytes` (a few MiB) in memory and
/// in a file, whatever the build's steps print, with followers that get everything from
/// the start (or a line saying what was dropped) and then each new line until the end.
/// A follower reads from the ring at its own pace; one that falls behind by more than the
/// ring is told how many lines it missed, so no follower holds a queue of its own.
/// Step progress (`step(_:)`) is a line too, which followers get as a `step` event in its
/// place; a finished build's steps are kept beside its log (`<log>.steps`, JSON lines).
public final class BuildLog: @unchecked Sendable {
    public enum Event: Sendable, Equatable {
        case line(String)
        /// A step started, was found in the cache, is still running, ended or failed (its
        /// `text` is the log line that tells it, in the same place).
        case step(StepProgress)
        /// The build ended: `ready`, or `failed` with its error.
        case finished(status: String, error: String?)
    }

    /// What a build log keeps by default: its last 4 MiB.
    public static let defaultMaxBytes = 4 << 20
    /// A longer line is cut (a step that prints without line breaks).
    public static let maxLineBytes = 16 << 10
    /// What a kept line costs besides its bytes (the ring counts it, so that a flood of
    /// empty lines is bounded too).
    static let lineOverhead = 32
    /// Step records written to `<log>.steps` at most (a step reports every 30 s while it runs).
    static let maxStepRecords = 10_000

    private let lock = NSLock()
    /// The kept lines are `lines[start...]`; the first has sequence number `firstSequence`.
    private var lines: [String] = []
    private var start = 0
    private var firstSequence = 0
    private var keptBytes = 0
    private var droppedBytes = 0
    private var end: Event?
    private var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    private var file: FileHandle?
    private var fileBytes = 0
    /// The file reached `maxBytes`: it is written again from the ring when the build ends.
    private var fileFull = false
    /// Step events by the sequence number of the line that tells them (kept lines only).
    private var stepAt: [Int: StepProgress] = [:]
    /// The latest state of each step, by step number (as many as the build has steps).
    private var latestSteps: [Int: StepProgress] = [:]
    private var stepFile: FileHandle?
    private var stepRecords = 0
    public let path: String?
    public let maxBytes: Int

    public init(path: String?, maxBytes: Int = BuildLog.defaultMaxBytes) {
        self.path = path
        self.maxBytes = max(maxBytes, 4096)
        if let path {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            file = FileHandle(forWritingAtPath: path)
            _ = FileManager.default.createFile(atPath: Self.stepsPath(path), contents: nil)
            stepFile = FileHandle(forWritingAtPath: Self.stepsPath(path))
        }
    }

    /// A finished build's log read back from its file (its last `maxBytes` at most), its
    /// step lines told as step events again.
    public static func load(path: String, status: String, error: String?, maxBytes: Int = BuildLog.defaultMaxBytes) -> BuildLog {
        let log = BuildLog(path: nil, maxBytes: maxBytes)
        // The steps by the line that tells them, in order (a line may repeat: "still running").
        var steps: [String: [StepProgress]] = [:]
        if let handle = FileHandle(forReadingAtPath: stepsPath(path)) {
            defer { try? handle.close() }
            let data = (try? handle.read(upToCount: maxBytes)) ?? Data()
            for record in data.split(separator: UInt8(ascii: "\n")) {
                if let progress = try? JSONDecoder().decode(StepProgress.self, from: Data(record)) {
                    steps[progress.text, default: []].append(progress)
                }
            }
        }
        if let handle = FileHandle(forReadingAtPath: path) {
            defer { try? handle.close() }
            let size = (try? handle.seekToEnd()) ?? 0
            let skip = size > UInt64(maxBytes) ? size - UInt64(maxBytes) : 0
            try? handle.seek(toOffset: skip)
            if let data = try? handle.read(upToCount: maxBytes) {
                var text = String(decoding: data, as: UTF8.self)
                // A cut at the front leaves part of a line: it goes.
                if skip > 0, let newline = text.firstIndex(of: "\n") { text = String(text[text.index(after: newline)...]) }
                for line in text.split(separator: "\n").map(String.init) {
                    if var queue = steps[line], !queue.isEmpty {
                        log.step(queue.removeFirst())
                        steps[line] = queue
                    } else {
                        log.append(line)
                    }
                }
            }
        }
        log.finish(status: status, error: error)
        return log
    }

    public func append(_ text: String) {
        let newLines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for piece in newLines.last == "" ? Array(newLines.dropLast()) : Array(newLines) {
            let line = Self.cut(String(piece))
            let waiting: [CheckedContinuation<Void, Never>] = lock.withLock {
                guard end == nil else { return [] }
                keep(line)
                writeToFile(line)
                let all = Array(waiters.values)
                waiters.removeAll()
                return all
            }
            for waiter in waiting { waiter.resume() }
        }
    }

    public func finish(status: String, error: String?) {
        let waiting: [CheckedContinuation<Void, Never>] = lock.withLock {
            guard end == nil else { return [] }
            end = .finished(status: status, error: error)
            if fileFull { rewriteFile() }
            try? file?.close()
            file = nil
            try? stepFile?.close()
            stepFile = nil
            let all = Array(waiters.values)
            waiters.removeAll()
            return all
        }
        for waiter in waiting { waiter.resume() }
    }

    public var isFinished: Bool { lock.withLock { end != nil } }

    /// Records a step's progress: its log line, and a `step` event for followers.
    public func step(_ progress: StepProgress) {
        let line = Self.cut(progress.text)
        let waiting: [CheckedContinuation<Void, Never>] = lock.withLock {
            guard end == nil else { return [] }
            stepAt[firstSequence + (lines.count - start)] = progress
            latestSteps[progress.step] = progress
            keep(line)
            writeToFile(line)
            if let stepFile, stepRecords < Self.maxStepRecords, let record = try? JSONEncoder().encode(progress) {
                stepRecords += 1
                try? stepFile.write(contentsOf: record + Data("\n".utf8))
            }
            let all = Array(waiters.values)
            waiters.removeAll()
            return all
        }
        for waiter in waiting { waiter.resume() }
    }

    /// The latest state of each step so far, in step order.
    public var steps: [StepProgress] {
        lock.withLock { latestSteps.values.sorted { $0.step < $1.step } }
    }

    /// The kept lines, after a line saying how much was dropped (if anything was).
    public var text: [String] {
        lock.withLock { (firstSequence > 0 ? [dropped(firstSequence)] : []) + lines[start...] }
    }

    /// Bytes the ring holds now (with each line's overhead).
    public var keptByteCount: Int { lock.withLock { keptBytes } }

    public func tail(_ count: Int) -> [String] { lock.withLock { Array(lines[start...].suffix(count)) } }

    /// Everything kept, then each new line, then the end.
    public func follow() -> AsyncStream<Event> {
        let cursor = Cursor()
        return AsyncStream(unfolding: { await self.next(cursor) })
    }

    // MARK: the ring

    /// Where one follower is (touched under the log's lock only).
    private final class Cursor: @unchecked Sendable {
        var position = 0
        var done = false
    }

    private enum Step {
        case event(Event?)
        case wait
    }

    private func next(_ cursor: Cursor) async -> Event? {
        while true {
            let step: Step = lock.withLock {
                if cursor.done { return .event(nil) }
                if cursor.position < firstSequence {
                    let skipped = firstSequence - cursor.position
                    cursor.position = firstSequence
                    return .event(.line(skipped == firstSequence ? dropped(skipped) : missed(skipped)))
                }
                let index = start + (cursor.position - firstSequence)
                if index < lines.count {
                    defer { cursor.position += 1 }
                    return .event(stepAt[cursor.position].map { .step($0) } ?? .line(lines[index]))
                }
                if let end {
                    cursor.done = true
                    return .event(end)
                }
                return .wait
            }
            if case .event(let event) = step { return event }
            let id = UUID()
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now: Bool = lock.withLock {
                        let available = start + (cursor.position - firstSequence) < lines.count
                        if available || end != nil || Task.isCancelled { return true }
                        waiters[id] = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                let waiter = lock.withLock { waiters.removeValue(forKey: id) }
                waiter?.resume()
            }
            if Task.isCancelled { return nil }
        }
    }

    /// Adds a line and drops the oldest while the ring is over its size (under the lock).
    private func keep(_ line: String) {
        lines.append(line)
        keptBytes += line.utf8.count + Self.lineOverhead
        while keptBytes > maxBytes, lines.count - start > 1 {
            let first = lines[start]
            lines[start] = ""
            stepAt.removeValue(forKey: firstSequence)
            start += 1
            firstSequence += 1
            keptBytes -= first.utf8.count + Self.lineOverhead
            droppedBytes += first.utf8.count + 1
        }
        if start > 1024, start * 2 > lines.count {
            lines.removeFirst(start)
            start = 0
        }
    }

    /// Appends a line to the file until it holds `maxBytes` (under the lock).
    private func writeToFile(_ line: String) {
        guard let file, !fileFull else { return }
        let data = Data((line + "\n").utf8)
        guard fileBytes + data.count <= maxBytes else {
            fileFull = true
            return
        }
        fileBytes += data.count
        try? file.write(contentsOf: data)
    }

    /// Replaces the file with the ring (under the lock): the file's size stays bounded too.
    private func rewriteFile() {
        guard let path else { return }
        var text = firstSequence > 0 ? dropped(firstSequence) + "\n" : ""
        for line in lines[start...] { text += line + "\n" }
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else { return }
        if rename(temporary, path) != 0 { try? FileManager.default.removeItem(atPath: temporary) }
    }

    private func dropped(_ count: Int) -> String {
        "[log truncated: \(count) earlier lines (\(droppedBytes) bytes) were dropped; a build log keeps its last \(maxBytes >> 10) KiB]"
    }

    private func missed(_ count: Int) -> String {
        "[log truncated: \(count) lines were dropped before this reader got them; a build log keeps its last \(maxBytes >> 10) KiB]"
    }

    static func stepsPath(_ path: String) -> String { path + ".steps" }

    static func cut(_ line: String) -> String {
        guard line.utf8.count > maxLineBytes else { return line }
        let kept = String(decoding: line.utf8.prefix(maxLineBytes), as: UTF8.self)
        return kept + " [line cut: \(line.utf8.count) bytes]"
    }
}
