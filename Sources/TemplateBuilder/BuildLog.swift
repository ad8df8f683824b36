import Foundation

/// The log of one template build: lines kept in memory (bounded) and in a file, with
/// followers that get everything from the start and then each new line until the end.
public final class BuildLog: @unchecked Sendable {
    public enum Event: Sendable, Equatable {
        case line(String)
        /// The build ended: `ready`, or `failed` with its error.
        case finished(status: String, error: String?)
    }

    private let lock = NSLock()
    private var lines: [String] = []
    private var droppedLines = 0
    private var end: Event?
    private var followers: [UUID: AsyncStream<Event>.Continuation] = [:]
    private let file: FileHandle?
    public let path: String?
    /// Lines kept in memory; older ones are only in the file.
    private let maxLines: Int

    public init(path: String?, maxLines: Int = 20_000) {
        self.path = path
        self.maxLines = maxLines
        if let path {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            file = FileHandle(forWritingAtPath: path)
        } else {
            file = nil
        }
    }

    public func append(_ text: String) {
        let newLines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for line in newLines.last == "" ? Array(newLines.dropLast()) : newLines {
            let continuations: [AsyncStream<Event>.Continuation] = lock.withLock {
                guard end == nil else { return [] }
                lines.append(line)
                if lines.count > maxLines {
                    lines.removeFirst(lines.count - maxLines)
                    droppedLines += 1
                }
                return Array(followers.values)
            }
            try? file?.write(contentsOf: Data((line + "\n").utf8))
            for continuation in continuations { continuation.yield(.line(line)) }
        }
    }

    public func finish(status: String, error: String?) {
        let continuations: [AsyncStream<Event>.Continuation] = lock.withLock {
            guard end == nil else { return [] }
            end = .finished(status: status, error: error)
            let all = Array(followers.values)
            followers.removeAll()
            return all
        }
        try? file?.close()
        for continuation in continuations {
            continuation.yield(.finished(status: status, error: error))
            continuation.finish()
        }
    }

    public var isFinished: Bool { lock.withLock { end != nil } }

    /// The lines so far (the last `maxLines`).
    public var text: [String] { lock.withLock { lines } }

    public func tail(_ count: Int) -> [String] { lock.withLock { Array(lines.suffix(count)) } }

    /// Everything so far, then each new line, then the end.
    public func follow() -> AsyncStream<Event> {
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .unbounded)
        let id = UUID()
        lock.withLock {
            for line in lines { continuation.yield(.line(line)) }
            if let end {
                continuation.yield(end)
                continuation.finish()
            } else {
                followers[id] = continuation
            }
        }
        continuation.onTermination = { [weak self] _ in
            self?.lock.withLock { _ = self?.followers.removeValue(forKey: id) }
        }
        return stream
    }
}
