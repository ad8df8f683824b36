import AgentProtocol
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
    public func acceptGatewayConnection(
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
        // The guest may close its side first and still be owed an answer: the exchange
        // only ends once everything for the guest is written.
        let (written, writtenContinuation) = AsyncStream<Void>.makeStream()
        try await exchange(
            .POST, AgentAPI.Path.gatewayAccept, query: [], timeout: nil, concurrentBody: true,
            writeBody: { writer in
                defer { writtenContinuation.finish() }
                while let chunk = await toGuest.next() {
                    try await writer.write(.body(.byteBuffer(chunk)))
                }
                try await writer.write(.end(nil))
            }
        ) { head, body in
            try await self.checkStatus(head, &body)
            onAccepted()
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
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
            // closes by itself once both ends are done; its inbound then ends.
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
