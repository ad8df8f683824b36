import AgentProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import OmniRunError

/// The host's client of one guest agent. Everything the guest sends back is
/// bounded: JSON answers, event lines and error bodies have size limits, and a
/// guest that stops answering fails the call with a timeout naming the sandbox.
/// An answer no honest agent sends (malformed JSON, impossible sizes or pids, broken
/// HTTP/2) fails its call with `.protocolViolation` and is reported once to
/// `onProtocolViolation`.
public final class GuestAgentClient: Sendable {
    public let name: String
    let connection: AgentConnection
    let logger: Logger
    /// Largest JSON answer that lists things (files, processes, a process's output).
    public static let maxJSONBytes = 64 << 20
    /// Largest JSON answer of a fixed shape (health, metrics, a file's entry, `{}`).
    public static let maxSmallReplyBytes = 64 << 10
    public static let maxEventLineBytes = 1 << 20
    public static let defaultTimeout: Duration = .seconds(30)
    static let sendBatchSize = 256 << 10
    /// Work every call but `init` waits for (see `admit(after:)`): not started yet
    /// (`pending`), or running/finished (`task`).
    let admission = NIOLockedValueBox<Admission>(.open)
    enum Admission: Sendable {
        case open
        case pending(@Sendable () async throws -> Void)
        case task(Task<Void, any Error>)
    }

    init(name: String, connection: AgentConnection, logger: Logger) {
        self.name = name
        self.connection = connection
        self.logger = logger
    }

    public var isConnected: Bool { connection.isActive }

    /// Calls `handler` once with the first protocol violation of this agent (at once if
    /// one happened already). The runtime ends the sandbox with it as the reason.
    public func onProtocolViolation(_ handler: @escaping @Sendable (String) -> Void) {
        connection.violations.listen(handler)
    }

    /// The first protocol violation of this agent, if any.
    public var protocolViolation: String? { connection.violations.error }

    /// Holds every later call except `init` until `work` has run, and fails them with
    /// its error if it fails. `work` starts with the first such call (or `startAdmission`),
    /// not before: a pooled machine gets its identity this way, so a create is answered
    /// without waking the guest, and no call of the sandbox's user can reach the agent
    /// before the identity is in place.
    public func admit(after work: @escaping @Sendable () async throws -> Void) {
        admission.withLockedValue { $0 = .pending(work) }
    }

    /// Starts the admission work now if it has not started; returns it (nil: none).
    @discardableResult
    public func startAdmission() -> Task<Void, any Error>? {
        admission.withLockedValue { state in
            switch state {
            case .open: return nil
            case .task(let task): return task
            case .pending(let work):
                let task = Task { try await work() }
                state = .task(task)
                return task
            }
        }
    }

    public func close() async {
        await connection.close()
    }

    // MARK: lifecycle

    public func health(timeout: Duration = defaultTimeout) async throws -> HealthResponse {
        try await json(.GET, AgentAPI.Path.health, timeout: timeout)
    }

    public func initialize(_ request: InitRequest, timeout: Duration = defaultTimeout) async throws -> InitResponse {
        try await json(.POST, AgentAPI.Path.initialize, body: request, timeout: timeout)
    }

    public func prepareSnapshot() async throws {
        let _: EmptyReply = try await json(.POST, AgentAPI.Path.prepareSnapshot, body: EmptyReply())
    }

    public func shutdown() async throws {
        let _: EmptyReply = try await json(.POST, AgentAPI.Path.shutdown, body: EmptyReply(), timeout: .seconds(5))
    }

    // MARK: processes

    /// Starts a process and delivers its events in order until `end` (or until the
    /// caller stops: throwing from `onEvent` or cancelling detaches from the process,
    /// which keeps running).
    /// With `timeout`, a stream still open after it is closed and the call fails with
    /// `.timeout` (the agent's own `timeoutMillis` is the guest's word; this is the host's).
    public func startProcess(
        _ request: ProcessStartRequest, timeout: Duration? = nil, onEvent: @escaping @Sendable (ProcessEvent) async throws -> Void
    ) async throws {
        try await events(AgentAPI.Path.processStart, body: request, timeout: timeout, onEvent: onEvent)
    }

    /// Re-attaches to a running or finished process by pid or tag.
    public func connectProcess(
        _ selector: ProcessSelector, onEvent: @escaping @Sendable (ProcessEvent) async throws -> Void
    ) async throws {
        try await events(AgentAPI.Path.processConnect, body: selector, onEvent: onEvent)
    }

    /// Starts a process and returns its pid once the agent has started it. With
    /// `onEvent`, output keeps flowing to it in the background until the process
    /// ends; without, the call detaches at once (the process runs on and its output
    /// stays in the agent for `processOutput` and `connectProcess`).
    /// An agent that has not reported the start within `startTimeout` fails the call (the
    /// stream is closed; a process it starts later runs on unobserved).
    public func startDetached(
        _ request: ProcessStartRequest, startTimeout: Duration = defaultTimeout,
        onEvent: (@Sendable (ProcessEvent) async throws -> Void)? = nil
    ) async throws -> Int32 {
        struct Detach: Error {}
        let (pidStream, pidContinuation) = AsyncThrowingStream<Int32, any Error>.makeStream()
        let runner = Task {
            do {
                try await self.startProcess(request) { event in
                    if event.type == .start {
                        guard let pid = event.pid, pid > 0 else {
                            throw self.violation("started a process with pid \(event.pid.map { "\($0)" } ?? "none")")
                        }
                        // The caller sees `start` before it sees the pid: what it refuses fails the start.
                        try await onEvent?(event)
                        pidContinuation.yield(pid)
                        if onEvent == nil { throw Detach() }
                        return
                    }
                    try await onEvent?(event)
                }
                pidContinuation.finish()
            } catch is Detach {
                pidContinuation.finish()
            } catch {
                pidContinuation.finish(throwing: error)
            }
        }
        let name = self.name
        let timer = Task {
            try await Task.sleep(for: startTimeout)
            pidContinuation.finish(
                throwing: OmniRunError(.timeout, "the agent of \(name) did not start the process within \(startTimeout)"))
            runner.cancel()
        }
        defer { timer.cancel() }
        for try await pid in pidStream { return pid }
        throw OmniRunError(.agentError, "the agent of \(name) ended the stream before the process started")
    }

    public func sendInput(pid: Int32, data: [UInt8]?, close: Bool = false) async throws {
        let request = ProcessInputRequest(pid: pid, data: data.map { Data($0).base64EncodedString() }, close: close)
        let _: EmptyReply = try await json(.POST, AgentAPI.Path.processInput, body: request)
    }

    public func signal(pid: Int32, signal: Int32) async throws {
        let _: EmptyReply = try await json(
            .POST, AgentAPI.Path.processSignal, body: ProcessSignalRequest(pid: pid, signal: signal))
    }

    public func resize(pid: Int32, size: PTYSize) async throws {
        let _: EmptyReply = try await json(
            .POST, AgentAPI.Path.processResize, body: ProcessResizeRequest(pid: pid, size: size))
    }

    public func processOutput(pid: Int32) async throws -> ProcessOutput {
        try await json(.GET, AgentAPI.Path.processOutput, query: [("pid", "\(pid)")], limit: Self.maxJSONBytes)
    }

    public func listProcesses(includeFinished: Bool = false) async throws -> [GuestProcessInfo] {
        try await json(.GET, AgentAPI.Path.processList, query: includeFinished ? [("all", "1")] : [], limit: Self.maxJSONBytes)
    }

    // MARK: files

    public func stat(path: String, user: String? = nil) async throws -> FileEntry {
        try await json(.GET, AgentAPI.Path.fileStat, query: [("path", path)] + userQuery(user))
    }

    public func list(path: String, depth: Int = 1, user: String? = nil) async throws -> [FileEntry] {
        try await json(
            .GET, AgentAPI.Path.fileList, query: [("path", path), ("depth", "\(depth)")] + userQuery(user), limit: Self.maxJSONBytes)
    }

    public func makeDirectory(path: String, user: String? = nil) async throws -> FileEntry {
        try await json(.POST, AgentAPI.Path.fileMakeDirectory, body: MakeDirectoryRequest(path: path, user: user))
    }

    public func move(from: String, to: String, user: String? = nil) async throws -> FileEntry {
        try await json(.POST, AgentAPI.Path.fileMove, body: MoveRequest(from: from, to: to, user: user))
    }

    public func remove(path: String, recursive: Bool = true, user: String? = nil) async throws {
        let _: EmptyReply = try await json(
            .POST, AgentAPI.Path.fileRemove, body: RemoveRequest(path: path, recursive: recursive, user: user))
    }

    /// Streams a file's contents to `onChunk`, one chunk at a time (back-pressured).
    /// Returns the size the agent announced.
    @discardableResult
    public func readFile(
        path: String, user: String? = nil, onChunk: @Sendable (ByteBuffer) async throws -> Void
    ) async throws -> Int64? {
        try await exchange(
            .GET, AgentAPI.Path.fileRead, query: [("path", path)] + userQuery(user), timeout: nil,
            writeBody: { writer in try await writer.write(.end(nil)) }
        ) { head, body in
            try await self.checkStatus(head, &body)
            while let chunk = try await body.next() { try await onChunk(chunk) }
            return head.headers.first(name: "x-file-size").flatMap { Int64($0) }.flatMap { $0 >= 0 ? $0 : nil }
        }
    }

    public func readFile(path: String, user: String? = nil, limit: Int = 256 << 20) async throws -> [UInt8] {
        let collected = NIOLockedValueBox<[UInt8]>([])
        try await readFile(path: path, user: user) { chunk in
            try collected.withLockedValue { bytes in
                bytes.append(contentsOf: chunk.readableBytesView)
                if bytes.count > limit { throw OmniRunError(.payloadTooLarge, "file \(path) is larger than \(limit) bytes") }
            }
        }
        return collected.withLockedValue { $0 }
    }

    /// Writes a file from a sequence of chunks (back-pressured), creating parents.
    public func writeFile<Chunks: AsyncSequence & Sendable>(
        path: String, user: String? = nil, mode: UInt32? = nil, append: Bool = false, chunks: Chunks
    ) async throws -> FileEntry where Chunks.Element == ByteBuffer {
        var query = [("path", path)] + userQuery(user)
        if let mode { query.append(("mode", String(mode, radix: 8))) }
        if append { query.append(("append", "true")) }
        return try await exchange(
            .PUT, AgentAPI.Path.fileWrite, query: query, timeout: nil,
            writeBody: { writer in
                // Small pieces (as a client's upload arrives) are sent in frames of up
                // to 256 KiB: each frame costs the guest the same, whatever its size.
                var pending = ByteBuffer()
                for try await chunk in chunks {
                    if pending.readableBytes == 0, chunk.readableBytes >= Self.sendBatchSize {
                        try await writer.write(.body(.byteBuffer(chunk)))
                        continue
                    }
                    var chunk = chunk
                    pending.writeBuffer(&chunk)
                    if pending.readableBytes >= Self.sendBatchSize {
                        try await writer.write(.body(.byteBuffer(pending)))
                        pending = ByteBuffer()
                    }
                }
                if pending.readableBytes > 0 { try await writer.write(.body(.byteBuffer(pending))) }
                try await writer.write(.end(nil))
            }
        ) { head, body in
            try await self.checkStatus(head, &body)
            return try await self.decodeBody(FileEntry.self, &body)
        }
    }

    public func writeFile(path: String, user: String? = nil, mode: UInt32? = nil, bytes: [UInt8]) async throws -> FileEntry {
        let chunkSize = 256 << 10
        let chunks = stride(from: 0, to: bytes.count, by: chunkSize).map {
            ByteBuffer(bytes: bytes[$0..<min($0 + chunkSize, bytes.count)])
        }
        return try await writeFile(path: path, user: user, mode: mode, chunks: chunks.asyncSequence)
    }

    /// Watches a directory; events are delivered until the caller cancels or throws.
    /// `onReady` runs once the agent watches (its answer's head comes after the watch is set).
    public func watch(
        path: String, recursive: Bool, user: String? = nil, onReady: (@Sendable () async throws -> Void)? = nil,
        onEvent: @escaping @Sendable (WatchEvent) async throws -> Void
    ) async throws {
        try await exchange(
            .GET, AgentAPI.Path.fileWatch, query: [("path", path), ("recursive", recursive ? "true" : "false")] + userQuery(user),
            timeout: nil, writeBody: { writer in try await writer.write(.end(nil)) }
        ) { head, body in
            try await self.checkStatus(head, &body)
            try await onReady?()
            try await self.forEachLine(&body) { line in
                try await onEvent(try self.decode(WatchEvent.self, line))
            }
        }
    }

    /// Connects to `port` on the guest's loopback: `upstream` is sent to it, its
    /// answer goes to `onData` until it closes.
    public func tunnel<Upstream: AsyncSequence & Sendable>(
        port: Int, upstream: Upstream, onData: @escaping @Sendable (ByteBuffer) async throws -> Void
    ) async throws where Upstream.Element == ByteBuffer {
        try await exchange(
            .POST, AgentAPI.Path.tunnel, query: [("port", "\(port)")], timeout: nil, concurrentBody: true,
            writeBody: { writer in
                for try await chunk in upstream { try await writer.write(.body(.byteBuffer(chunk))) }
                try await writer.write(.end(nil))
            }
        ) { head, body in
            try await self.checkStatus(head, &body)
            while let chunk = try await body.next() { try await onData(chunk) }
        }
    }
}
