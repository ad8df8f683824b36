import AgentProtocol
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import OmniRunError

/// A connection a program in the guest opened to the host gateway
/// (`AgentAPI.HostGateway`), handed to the host over the agent's channel.
public struct GatewayConnection: Sendable {
    let fromGuest: BytePipe
    let toGuest: BytePipe

    /// What the guest program sends, in order, until it closes its side.
    public var inbound: BytePipe.Chunks { BytePipe.Chunks(pipe: fromGuest) }

    /// Sends bytes to the guest program (suspends while it does not keep up).
    public func write(_ buffer: ByteBuffer) async throws {
        try await toGuest.send(buffer)
    }

    /// Ends the host's side: the guest program reads end-of-file.
    public func finish() async {
        await toGuest.finish()
    }

    /// Stops taking what the guest sends (`inbound` ends; later guest bytes end the exchange).
    public func finishInbound() async {
        await fromGuest.finish()
    }
}

/// A bounded queue of byte chunks between two tasks: `send` suspends while it is full,
/// so a slow reader slows the writer instead of growing memory.
public actor BytePipe {
    private var buffer: [ByteBuffer] = []
    private let capacity: Int
    private var finished = false
    private var reader: CheckedContinuation<Void, Never>?
    private var writers: [CheckedContinuation<Void, Never>] = []

    public init(capacity: Int = 16) {
        self.capacity = capacity
    }

    public func send(_ chunk: ByteBuffer) async throws {
        while buffer.count >= capacity && !finished {
            await withCheckedContinuation { writers.append($0) }
        }
        if finished { throw CancellationError() }
        buffer.append(chunk)
        reader?.resume()
        reader = nil
    }

    public func finish() {
        guard !finished else { return }
        finished = true
        reader?.resume()
        reader = nil
        for writer in writers { writer.resume() }
        writers.removeAll()
    }

    /// The next chunk, or nil once finished and drained.
    public func next() async -> ByteBuffer? {
        while buffer.isEmpty {
            if finished { return nil }
            await withCheckedContinuation { reader = $0 }
        }
        let chunk = buffer.removeFirst()
        if !writers.isEmpty { writers.removeFirst().resume() }
        return chunk
    }

    /// Everything sent into the pipe, in order, until it is finished.
    public nonisolated var chunks: Chunks { Chunks(pipe: self) }

    public struct Chunks: AsyncSequence, Sendable {
        public typealias Element = ByteBuffer
        let pipe: BytePipe

        public struct AsyncIterator: AsyncIteratorProtocol {
            let pipe: BytePipe
            public mutating func next() async -> ByteBuffer? { await pipe.next() }
        }

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(pipe: pipe) }
    }
}

extension GuestAgentClient {
    /// Waits until a program in the guest connects to the host gateway, calls
    /// `onAccepted`, and runs `serve` with the connection until both sides are done.
    /// Throws at once when the agent's connection is gone; cancelling stops the wait.
    ///
    /// The guest is not trusted to end its side: once `serve` is done and its bytes are
    /// written, the guest has `linger` to close before the stream is reset; and bytes for
    /// the guest that it does not take for `stallTimeout` end the connection. So an
    /// accepted connection always ends in bounded time after the host is done with it.
    public func acceptGatewayConnection(
        linger: Duration = .seconds(5), stallTimeout: Duration = .seconds(60),
        onAccepted: @escaping @Sendable () -> Void,
        serve: @escaping @Sendable (GatewayConnection) async throws -> Void
    ) async throws {
        let connection = GatewayConnection(fromGuest: BytePipe(), toGuest: BytePipe())
        let toGuest = connection.toGuest
        let fromGuest = connection.fromGuest
        // Whatever happens, both pipes end, so no task stays parked on them.
        defer {
            Task {
                await toGuest.finish()
                await fromGuest.finish()
            }
        }
        let watch = GatewayWatch()
        try await withThrowingTaskGroup(of: GatewayWatch.Outcome.self) { group in
            group.addTask {
                try await self.exchangeGateway(connection, watch: watch, onAccepted: onAccepted, serve: serve)
                return .completed
            }
            group.addTask {
                try await watch.expiry(linger: linger, stallTimeout: stallTimeout)
            }
            let first = try await group.next()
            group.cancelAll()
            if first == .stalled {
                throw OmniRunError(.timeout, "the guest took no bytes of its gateway connection for \(stallTimeout)")
            }
        }
    }

    private func exchangeGateway(
        _ connection: GatewayConnection, watch: GatewayWatch, onAccepted: @escaping @Sendable () -> Void,
        serve: @escaping @Sendable (GatewayConnection) async throws -> Void
    ) async throws {
        let toGuest = connection.toGuest
        let fromGuest = connection.fromGuest
        // The guest may close its side first and still be owed an answer: the exchange
        // only ends once everything for the guest is written.
        let (written, writtenContinuation) = AsyncStream<Void>.makeStream()
        try await exchange(
            .POST, AgentAPI.Path.gatewayAccept, query: [], timeout: nil, concurrentBody: true,
            writeBody: { writer in
                defer {
                    writtenContinuation.finish()
                    watch.written()
                }
                while let chunk = await toGuest.next() {
                    watch.writing(true)
                    try await writer.write(.body(.byteBuffer(chunk)))
                    watch.writing(false)
                }
                try await writer.write(.end(nil))
            }
        ) { head, body in
            try await self.checkStatus(head, &body)
            watch.accepted()
            onAccepted()
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    defer { watch.served() }
                    do {
                        try await serve(connection)
                    } catch {
                        await toGuest.finish()
                        throw error
                    }
                    await toGuest.finish()
                }
                do {
                    while let chunk = try await body.next() { try await fromGuest.send(chunk) }
                } catch {
                    await fromGuest.finish()
                    await toGuest.finish()
                    throw error
                }
                await fromGuest.finish()
                try await tasks.next()
            }
            for await _ in written {}
            // Written is not yet sent: the last bytes may wait for the guest's flow-control
            // window, and closing the stream now would reset it and cut them off. The stream
            // closes by itself once both ends are done; its inbound then ends (or `linger`
            // passes, and the stream is reset).
            while let part = try? await body.iterator.next() { _ = part }
        }
    }

    /// Runs the gateway path once end to end (a guest shell connects, the host echoes a
    /// line), so that under emulation the first real use finds it translated already.
    public func exerciseGateway() async throws {
        let echo = Task {
            try await self.acceptGatewayConnection(onAccepted: {}) { connection in
                for await chunk in connection.inbound { try await connection.write(chunk) }
                await connection.finish()
            }
        }
        defer { echo.cancel() }
        let port = AgentAPI.HostGateway.port
        let result = try await run(
            ProcessStartRequest(
                shell: "exec 3<>/dev/tcp/127.0.0.1/\(port) && echo warm >&3 && read -r -t 20 line <&3 && [ \"$line\" = warm ]",
                timeoutMillis: 30_000))
        guard result.exitCode == 0 else {
            throw OmniRunError(.agentError, "the host gateway of \(name) did not echo (exit \(result.exitCode))")
        }
    }
}

/// When an accepted gateway connection is over, whatever its guest does: `linger` after
/// the host is done (the guest had its answer and did not close), or `stallTimeout` after
/// a write to the guest began that it never took.
final class GatewayWatch: Sendable {
    enum Outcome: Sendable {
        case completed
        case lingered
        case stalled
    }

    private struct State {
        var accepted = false
        var writeStarted: ContinuousClock.Instant?
        var served = false
        var written = false
        /// When `serve` had returned and everything for the guest was written.
        var hostDoneAt: ContinuousClock.Instant?

        mutating func check() {
            if served, written, hostDoneAt == nil { hostDoneAt = .now }
        }
    }

    private let state = NIOLockedValueBox(State())

    /// A guest connection came (before that there is nothing to watch).
    func accepted() {
        state.withLockedValue { $0.accepted = true }
    }

    func writing(_ busy: Bool) {
        state.withLockedValue { $0.writeStarted = busy ? .now : nil }
    }

    /// The host's `serve` returned.
    func served() {
        state.withLockedValue {
            $0.served = true
            $0.check()
        }
    }

    /// Everything for the guest was handed to the stream.
    func written() {
        state.withLockedValue {
            $0.written = true
            $0.writeStarted = nil
            $0.check()
        }
    }

    /// Returns once the connection is due to end (checked every second once accepted);
    /// cancelled otherwise.
    func expiry(linger: Duration, stallTimeout: Duration) async throws -> Outcome {
        while true {
            let accepted = state.withLockedValue { $0.accepted }
            try await Task.sleep(for: accepted ? .seconds(1) : .seconds(5))
            let now = ContinuousClock.now
            let (writeStarted, hostDoneAt) = state.withLockedValue { ($0.writeStarted, $0.hostDoneAt) }
            if let hostDoneAt, now - hostDoneAt >= linger { return .lingered }
            if let writeStarted, now - writeStarted >= stallTimeout { return .stalled }
        }
    }
}
