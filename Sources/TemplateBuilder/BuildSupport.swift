import Crypto
import Foundation
import NIOCore

/// A file as an async sequence of buffers (for streaming it into a machine).
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String
    var chunkSize = 256 << 10

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle?
        let chunkSize: Int

        mutating func next() async throws -> ByteBuffer? {
            guard let handle, let data = try handle.read(upToCount: chunkSize), !data.isEmpty else {
                try? handle?.close()
                return nil
            }
            return ByteBuffer(bytes: data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(handle: FileHandle(forReadingAtPath: path), chunkSize: chunkSize)
    }
}

/// SHA-256 over data fed in pieces, as hex.
struct SHA256Stream {
    private var hasher = SHA256()

    mutating func update(_ data: Data) { hasher.update(data: data) }

    var hex: String { hasher.finalize().map { String(format: "%02x", $0) }.joined() }
}

/// A step's output, split into lines for the build log (a partial line waits for its end).
/// The build machine's output is the Dockerfile author's: a line is kept to `maxLineBytes`
/// (the rest is counted, not kept), so the log's line bound is a byte bound too.
final class StepOutput: @unchecked Sendable {
    private let log: BuildLog
    private let lock = NSLock()
    private var pending: [UInt8] = []
    private var exit: (Int32, String?)?
    /// When the step last printed something (or was said to be still running).
    private var lastActivity = ContinuousClock.now

    /// How long the step has printed nothing.
    var quietFor: Duration { lock.withLock { ContinuousClock.now - lastActivity } }

    /// A "still running" line was logged.
    func noted() { lock.withLock { lastActivity = ContinuousClock.now } }

    /// The process's exit code and the agent's error, once it ended.
    var end: (Int32, String?)? { lock.withLock { exit } }

    func ended(exitCode: Int32, error: String?) {
        lock.withLock { exit = (exitCode, error) }
    }

    init(log: BuildLog) {
        self.log = log
    }

    func add(_ data: Data) {
        let lines: [String] = lock.withLock {
            lastActivity = ContinuousClock.now
            pending += data
            guard let last = pending.lastIndex(of: UInt8(ascii: "\n")) else {
                if pending.count > Self.maxLineBytes {
                    defer { pending.removeAll() }
                    return [Self.text(pending[...])]
                }
                return []
            }
            let complete = pending[...last]
            pending.removeFirst(last + 1)
            return complete.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast().map(Self.text)
        }
        for line in lines { log.append("  " + line) }
    }

    func flush() {
        let rest: [UInt8] = lock.withLock {
            defer { pending.removeAll() }
            return pending
        }
        if !rest.isEmpty { log.append("  " + Self.text(rest[...])) }
    }

    static let maxLineBytes = 16 << 10

    /// One line of the log: at most `maxLineBytes`, with what was cut counted.
    static func text(_ bytes: ArraySlice<UInt8>) -> String {
        guard bytes.count > maxLineBytes else { return String(decoding: bytes, as: UTF8.self) }
        return String(decoding: bytes.prefix(maxLineBytes), as: UTF8.self) + " … (\(bytes.count - maxLineBytes) more bytes)"
    }
}
