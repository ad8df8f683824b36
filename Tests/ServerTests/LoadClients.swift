import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Attack clients for the listener tests, on loopback only, each bounded in count and time.
enum LoadClients {
    /// What happened to one connection: when it opened and closed (seconds from the start of
    /// its attack) and the bytes the server sent.
    final class Outcome: @unchecked Sendable {
        let lock = NIOLock()
        var openedAt: Double?
        var closedAt: Double?
        var received: [UInt8] = []

        var text: String { lock.withLock { String(decoding: received, as: UTF8.self) } }
        var closed: Bool { lock.withLock { closedAt != nil } }
        var status: Int? {
            let line = text.split(separator: "\r\n").first ?? ""
            let parts = line.split(separator: " ")
            return parts.count >= 2 && parts[0].hasPrefix("HTTP/1.") ? Int(parts[1]) : nil
        }
    }

    /// Records what a connection receives and when it closes.
    final class Recorder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let outcome: Outcome
        let start: ContinuousClock.Instant

        init(outcome: Outcome, start: ContinuousClock.Instant) {
            self.outcome = outcome
            self.start = start
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            outcome.lock.withLock {
                if outcome.received.count < 4096 { outcome.received += buffer.readableBytesView.prefix(4096) }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            let elapsed = LoadClients.seconds(ContinuousClock.now - start)
            outcome.lock.withLock { outcome.closedAt = elapsed }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Connections held open against a listener.
    final class Held: @unchecked Sendable {
        let channels = NIOLockedValueBox<[any Channel]>([])
        let outcomes = NIOLockedValueBox<[Outcome]>([])
        let failures = NIOLockedValueBox(0)
        let start = ContinuousClock.now

        var openCount: Int { channels.withLockedValue { $0.filter(\.isActive).count } }

        func closeAll() async {
            for channel in channels.withLockedValue({ $0 }) { try? await channel.close() }
        }
    }

    /// Opens up to `count` connections to 127.0.0.1:`port` from `source` (an address of
    /// 127/8), `parallel` at a time, until `within` passes; each sends `payload` once open
    /// and then stays silent. Connections that fail to open are counted, not retried.
    static func flood(
        port: Int, from source: String, count: Int, parallel: Int = 32, within: Duration, payload: String? = nil
    ) async -> Held {
        let held = Held()
        let deadline = ContinuousClock.now + within
        let next = NIOLockedValueBox(0)
        await withDiscardingTaskGroup { group in
            for _ in 0..<parallel {
                group.addTask {
                    while ContinuousClock.now < deadline {
                        let index = next.withLockedValue { value -> Int in
                            value += 1
                            return value
                        }
                        guard index <= count else { return }
                        let outcome = Outcome()
                        do {
                            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                                .connectTimeout(.seconds(3))
                                .bind(to: try SocketAddress(ipAddress: source, port: 0))
                                .channelInitializer { channel in
                                    channel.eventLoop.makeCompletedFuture {
                                        try channel.pipeline.syncOperations.addHandler(Recorder(outcome: outcome, start: held.start))
                                    }
                                }
                                .connect(host: "127.0.0.1", port: port).get()
                            outcome.lock.withLock { outcome.openedAt = LoadClients.seconds(ContinuousClock.now - held.start) }
                            if let payload { channel.writeAndFlush(ByteBuffer(string: payload), promise: nil) }
                            held.channels.withLockedValue { $0.append(channel) }
                            held.outcomes.withLockedValue { $0.append(outcome) }
                        } catch {
                            held.failures.withLockedValue { $0 += 1 }
                        }
                    }
                }
            }
        }
        return held
    }

    /// A slowloris client: sends `head` one byte every `interval` (at most `bytes` of them)
    /// and reports when the server closed the connection and what it answered.
    static func slowloris(
        port: Int, from source: String = "127.0.0.1", head: String, interval: Duration, bytes: Int, prefix: String = ""
    ) async throws -> Outcome {
        let start = ContinuousClock.now
        let outcome = Outcome()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(to: try SocketAddress(ipAddress: source, port: 0))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Recorder(outcome: outcome, start: start))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        if !prefix.isEmpty {
            // A whole first request; the slow one is the next on the same connection.
            try? await channel.writeAndFlush(ByteBuffer(string: prefix))
            try await Task.sleep(for: .seconds(1))
        }
        for byte in Array(head.utf8).prefix(bytes) {
            guard channel.isActive, !outcome.closed else { break }
            try? await channel.writeAndFlush(ByteBuffer(bytes: [byte]))
            try await Task.sleep(for: interval)
        }
        try? await channel.close()
        return outcome
    }
}
