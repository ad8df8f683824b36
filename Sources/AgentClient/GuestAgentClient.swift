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
public final class GuestAgentClient: Sendable {
    public let name: String
    private let connection: AgentConnection
    private let logger: Logger
    public static let maxJSONBytes = 64 << 20
    public static let maxEventLineBytes = 1 << 20
    public static let defaultTimeout: Duration = .seconds(30)

    private init(name: String, connection: AgentConnection, logger: Logger) {
        self.name = name
        self.connection = connection
        self.logger = logger
    }

    /// Connects and waits until the agent answers `health`, retrying until `timeout`.
    public static func connect(
        socketPath: String, name: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        timeout: Duration = .seconds(10), logger: Logger = Logger(label: "omnirun.agent-client"),
        giveUpIf: @escaping @Sendable () async -> String? = { nil }
    ) async throws -> GuestAgentClient {
        let deadline = ContinuousClock.now + timeout
        var lastError: (any Error)? = nil
        while ContinuousClock.now < deadline {
            if let reason = await giveUpIf() {
                throw OmniRunError(.machineFailed, "\(name) stopped before its agent answered: \(reason)")
            }
            let connection: AgentConnection
            do {
                connection = try await AgentConnection.connect(socketPath: socketPath, group: group)
            } catch {
                // QEMU has not created its socket yet.
                lastError = error
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            let client = GuestAgentClient(name: name, connection: connection, logger: logger)
            // Ask again on the same connection while it stays up: a slow guest answers
            // late, and dropping the connection only makes it start over.
            while ContinuousClock.now < deadline, connection.isActive {
                let remaining = deadline - ContinuousClock.now
                do {
                    _ = try await client.health(timeout: min(max(remaining, .milliseconds(50)), .seconds(3)))
                    return client
                } catch {
                    lastError = error
                    if let reason = await giveUpIf() {
                        await connection.close()
                        throw OmniRunError(.machineFailed, "\(name) stopped before its agent answered: \(reason)")
                    }
                }
            }
            await connection.close()
            try await Task.sleep(for: .milliseconds(50))
        }
        throw OmniRunError(
            .timeout, "the agent of \(name) did not answer within \(timeout)",
            cause: lastError.map { OmniRunError(.unavailable, "\($0)") })
    }

    public var isConnected: Bool { connection.isActive }

    public func close() async {
        await connection.close()
    }

    // MARK: lifecycle

    public func health(timeout: Duration = defaultTimeout) async throws -> HealthResponse {
        try await json(.GET, AgentAPI.Path.health, timeout: timeout)
    }

    public func initialize(_ request: InitRequest) async throws -> InitResponse {
        try await json(.POST, AgentAPI.Path.initialize, body: request)
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
    public func startProcess(
        _ request: ProcessStartRequest, onEvent: @escaping @Sendable (ProcessEvent) async throws -> Void
    ) async throws {
        try await events(AgentAPI.Path.processStart, body: request, onEvent: onEvent)
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
    public func startDetached(
        _ request: ProcessStartRequest, onEvent: (@Sendable (ProcessEvent) async throws -> Void)? = nil
    ) async throws -> Int32 {
        struct Detach: Error {}
        let (pidStream, pidContinuation) = AsyncThrowingStream<Int32, any Error>.makeStream()
        Task {
            do {
                try await self.startProcess(request) { event in
                    if event.type == .start, let pid = event.pid {
                        pidContinuation.yield(pid)
                        if onEvent == nil { throw Detach() }
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
        try await json(.GET, AgentAPI.Path.processOutput, query: [("pid", "\(pid)")])
    }

    public func listProcesses(includeFinished: Bool = false) async throws -> [GuestProcessInfo] {
        try await json(.GET, AgentAPI.Path.processList, query: includeFinished ? [("all", "1")] : [])
    }

    // MARK: files

    public func stat(path: String, user: String? = nil) async throws -> FileEntry {
        try await json(.GET, AgentAPI.Path.fileStat, query: [("path", path)] + userQuery(user))
    }

    public func list(path: String, depth: Int = 1, user: String? = nil) async throws -> [FileEntry] {
        try await json(.GET, AgentAPI.Path.fileList, query: [("path", path), ("depth", "\(depth)")] + userQuery(user))
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
            return head.headers.first(name: "x-file-size").flatMap { Int64($0) }
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
                for try await chunk in chunks { try await writer.write(.body(.byteBuffer(chunk))) }
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
        return try await writeFile(path: path, user: user, mode: mode, chunks: chunks.async)
    }

    /// Watches a directory; events are delivered until the caller cancels or throws.
    public func watch(
        path: String, recursive: Bool, user: String? = nil, onEvent: @escaping @Sendable (WatchEvent) async throws -> Void
    ) async throws {
        try await exchange(
            .GET, AgentAPI.Path.fileWatch, query: [("path", path), ("recursive", recursive ? "true" : "false")] + userQuery(user),
            timeout: nil, writeBody: { writer in try await writer.write(.end(nil)) }
        ) { head, body in
            try await self.checkStatus(head, &body)
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

    // MARK: plumbing

    private func userQuery(_ user: String?) -> [(String, String)] {
        user.map { [("user", $0)] } ?? []
    }

    private func json<Reply: Decodable & Sendable>(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], timeout: Duration = defaultTimeout
    ) async throws -> Reply {
        try await exchange(method, path, query: query, timeout: timeout, writeBody: { try await $0.write(.end(nil)) }) {
            head, body in
            try await self.checkStatus(head, &body)
            return try await self.decodeBody(Reply.self, &body)
        }
    }

    private func json<Request: Encodable & Sendable, Reply: Decodable & Sendable>(
        _ method: HTTPMethod, _ path: String, body request: Request, timeout: Duration = defaultTimeout
    ) async throws -> Reply {
        let bytes = try JSONEncoder().encode(request)
        return try await exchange(
            method, path, query: [], timeout: timeout,
            writeBody: { writer in
                try await writer.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
                try await writer.write(.end(nil))
            }
        ) { head, body in
            try await self.checkStatus(head, &body)
            return try await self.decodeBody(Reply.self, &body)
        }
    }

    private func events<Request: Encodable & Sendable>(
        _ path: String, body request: Request, onEvent: @escaping @Sendable (ProcessEvent) async throws -> Void
    ) async throws {
        let bytes = try JSONEncoder().encode(request)
        try await exchange(
            .POST, path, query: [], timeout: nil,
            writeBody: { writer in
                try await writer.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
                try await writer.write(.end(nil))
            }
        ) { head, body in
            try await self.checkStatus(head, &body)
            try await self.forEachLine(&body) { line in
                let event = try self.decode(ProcessEvent.self, line)
                try await onEvent(event)
            }
        }
    }

    func forEachLine(_ body: inout ResponseBody, _ handle: ([UInt8]) async throws -> Void) async throws {
        var pending: [UInt8] = []
        while let chunk = try await body.next() {
            pending.append(contentsOf: chunk.readableBytesView)
            var start = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                try await handle(Array(pending[start..<newline]))
                start = newline + 1
            }
            pending.removeFirst(start)
            if pending.count > Self.maxEventLineBytes {
                throw OmniRunError(.protocolViolation, "the agent of \(name) sent an event line over \(Self.maxEventLineBytes) bytes")
            }
        }
        if !pending.isEmpty { try await handle(pending) }
    }

    func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw OmniRunError(.protocolViolation, "the agent of \(name) sent a malformed \(type): \(error)")
        }
    }

    private func decodeBody<T: Decodable>(_ type: T.Type, _ body: inout ResponseBody) async throws -> T {
        try decode(type, try await body.collect(limit: Self.maxJSONBytes, name: name))
    }

    private func checkStatus(_ head: HTTPResponseHead, _ body: inout ResponseBody) async throws {
        let status = Int(head.status.code)
        guard !(200..<300).contains(status) else { return }
        let bytes = (try? await body.collect(limit: 1 << 20, name: name)) ?? []
        let error = try? JSONDecoder().decode(AgentErrorBody.self, from: Data(bytes))
        let code: OmniRunError.Code
        switch error?.code {
        case AgentErrorCode.notFound: code = .notFound
        case AgentErrorCode.invalidArgument: code = status == 413 ? .payloadTooLarge : .invalidArgument
        case AgentErrorCode.conflict, AgentErrorCode.readOnly: code = .conflict
        case AgentErrorCode.permissionDenied: code = .forbidden
        case AgentErrorCode.noSpace: code = .noSpace
        default: code = status == 502 ? .unavailable : .agentError
        }
        throw OmniRunError(code, error?.message ?? "the agent of \(name) answered \(status)")
    }

    /// Opens a stream, sends the request, and hands the response to `readResponse`.
    /// With a timeout, a stuck guest closes the stream and the call fails with
    /// `.timeout`.
    func exchange<Result: Sendable>(
        _ method: HTTPMethod, _ path: String, query: [(String, String)], timeout: Duration?, concurrentBody: Bool = false,
        writeBody: @escaping @Sendable (NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>) async throws -> Void,
        readResponse: (HTTPResponseHead, inout ResponseBody) async throws -> Result
    ) async throws -> Result {
        guard connection.isActive else {
            throw OmniRunError(.unavailable, "the connection to the agent of \(name) is closed")
        }
        let stream: AgentConnection.Stream
        do {
            stream = try await connection.openStream()
        } catch {
            throw OmniRunError(.unavailable, "cannot open a stream to the agent of \(name): \(error)")
        }
        let timedOut = NIOLockedValueBox(false)
        let scheduled = timeout.map { limit in
            stream.channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(limit.components.seconds) * 1_000_000_000 + limit.components.attoseconds / 1_000_000_000)) {
                timedOut.withLockedValue { $0 = true }
                stream.channel.close(promise: nil)
            }
        }
        defer { scheduled?.cancel() }
        let uri = query.isEmpty ? path : path + "?" + AgentQuery.encode(query)
        let name = self.name
        do {
            return try await stream.executeThenClose { inbound, outbound in
                var headers = HTTPHeaders()
                headers.add(name: "host", value: "agent")
                headers.add(name: AgentAPI.versionHeader, value: "\(AgentAPI.version)")
                if method == .PUT || method == .POST { headers.add(name: "content-type", value: "application/octet-stream") }
                try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)))
                var body = ResponseBody(iterator: inbound.makeAsyncIterator())
                if concurrentBody {
                    let writer = Task { try await writeBody(outbound) }
                    stream.channel.closeFuture.whenComplete { _ in writer.cancel() }
                    let head = try await body.head(name: name)
                    let result = try await readResponse(head, &body)
                    writer.cancel()
                    return result
                }
                try await writeBody(outbound)
                let head = try await body.head(name: name)
                return try await readResponse(head, &body)
            }
        } catch let error as OmniRunError {
            if timedOut.withLockedValue({ $0 }) { throw timeoutError(timeout) }
            throw error
        } catch {
            if timedOut.withLockedValue({ $0 }) { throw timeoutError(timeout) }
            if error is CancellationError { throw error }
            throw OmniRunError(.unavailable, "the agent of \(name) went away during \(method) \(path): \(error)")
        }
    }

    private func timeoutError(_ timeout: Duration?) -> OmniRunError {
        OmniRunError(.timeout, "the agent of \(name) did not answer within \(timeout.map { "\($0)" } ?? "the time allowed")")
    }
}

struct EmptyReply: Codable, Sendable {}

/// The body of one response, read chunk by chunk.
struct ResponseBody {
    var iterator: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    private var ended = false

    init(iterator: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator) {
        self.iterator = iterator
    }

    mutating func head(name: String) async throws -> HTTPResponseHead {
        while let part = try await iterator.next() {
            if case .head(let head) = part {
                if head.status == .continue { continue }
                return head
            }
        }
        throw OmniRunError(.unavailable, "the agent of \(name) closed the stream without answering")
    }

    mutating func next() async throws -> ByteBuffer? {
        guard !ended else { return nil }
        while let part = try await iterator.next() {
            switch part {
            case .head: continue
            case .body(let buffer): return buffer
            case .end:
                ended = true
                return nil
            }
        }
        ended = true
        return nil
    }

    mutating func collect(limit: Int, name: String) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await next() {
            bytes.append(contentsOf: chunk.readableBytesView)
            if bytes.count > limit {
                throw OmniRunError(.protocolViolation, "the agent of \(name) sent more than \(limit) bytes")
            }
        }
        return bytes
    }
}

extension Array where Element: Sendable {
    /// An async sequence over the elements (for small in-memory bodies).
    public var asyncSequence: AsyncStream<Element> { async }

    /// An async sequence over the elements (for small in-memory bodies).
    var async: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}
