import AgentProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The guest end of the host gateway: a listener on `AgentAPI.HostGateway` whose
/// connections wait here until the host's next `gatewayAccept` request takes one.
/// Code in an air-gapped sandbox reaches the host's services (the LLM proxy) this way,
/// over the agent's own channel.
actor HostGateway {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    private let logger: Logger
    private var waiting: [Connection] = []
    private var takers: [(id: UInt64, continuation: CheckedContinuation<Connection?, Never>)] = []
    private var nextID: UInt64 = 0
    /// Tickets handed out that have not started waiting yet, and those of them whose
    /// request ended first.
    private var issued: Set<UInt64> = []
    private var cancelled: Set<UInt64> = []
    /// Whether a new connection would only be refused (`maxWaiting` wait and no request of
    /// the host does): then it is closed as it is accepted, at the least cost to the agent.
    private let full = NIOLockedValueBox(false)

    init(logger: Logger) {
        self.logger = logger
    }

    /// Listens until cancelled. Started at boot, so the listener is part of every snapshot.
    func listen(group: any EventLoopGroup) async {
        let address = "\(AgentAPI.HostGateway.host):\(AgentAPI.HostGateway.port)"
        let full = self.full
        do {
            let server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 128)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(host: AgentAPI.HostGateway.host, port: AgentAPI.HostGateway.port) {
                    (channel: any Channel) -> EventLoopFuture<Connection> in
                    if full.withLockedValue({ $0 }) {
                        // A failed initializer only drops this connection (the listener goes on).
                        channel.close(promise: nil)
                        return channel.eventLoop.makeFailedFuture(ChannelError.inappropriateOperationForState)
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try Connection(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                    }
                }
            logger.debug("host gateway listening", metadata: ["address": "\(address)"])
            try await server.executeThenClose { connections in
                for try await connection in connections { offer(connection) }
            }
        } catch {
            logger.warning("the host gateway is not available", metadata: ["address": "\(address)", "error": "\(error)"])
        }
    }

    private func offer(_ connection: Connection) {
        if !takers.isEmpty {
            takers.removeFirst().continuation.resume(returning: connection)
        } else if waiting.count < AgentAPI.HostGateway.maxWaiting {
            waiting.append(connection)
        } else {
            // The host takes no more for now (it serves a limited number per sandbox).
            Self.discard(connection)
        }
        updateFull()
    }

    private func updateFull() {
        let now = waiting.count >= AgentAPI.HostGateway.maxWaiting && takers.isEmpty
        full.withLockedValue { $0 = now }
    }

    /// Closes a connection nobody will serve. A connection must end through
    /// `executeThenClose`: dropping one whose writer is unfinished traps, and the agent is
    /// PID 1 (a program opening many connections would take the machine down with it).
    nonisolated static func discard(_ connection: Connection) {
        Task { try? await connection.executeThenClose { _, _ in } }
    }

    /// Puts back a connection the host could not take after all (its request went away).
    func giveBack(_ connection: Connection) {
        guard connection.channel.isActive else {
            Self.discard(connection)
            return
        }
        if !takers.isEmpty {
            takers.removeFirst().continuation.resume(returning: connection)
        } else {
            waiting.insert(connection, at: 0)
        }
        updateFull()
    }

    func ticket() -> UInt64 {
        nextID += 1
        issued.insert(nextID)
        return nextID
    }

    /// The next guest connection, or nil once `cancel(ticket)` is called.
    func take(_ ticket: UInt64) async -> Connection? {
        if cancelled.remove(ticket) != nil { return nil }
        issued.remove(ticket)
        while !waiting.isEmpty {
            let connection = waiting.removeFirst()
            updateFull()
            if connection.channel.isActive { return connection }
            Self.discard(connection)
        }
        return await withCheckedContinuation {
            takers.append((ticket, $0))
            updateFull()
        }
    }

    func cancel(_ ticket: UInt64) {
        guard let index = takers.firstIndex(where: { $0.id == ticket }) else {
            if issued.remove(ticket) != nil { cancelled.insert(ticket) }
            return
        }
        takers.remove(at: index).continuation.resume(returning: nil)
    }
}

extension HostGateway {
    /// Serves one `gatewayAccept` request: waits for a guest connection (or for the host
    /// to give up), answers 200 and joins the two.
    static func accept(_ exchange: inout Exchange, gateway: HostGateway) async throws {
        let ticket = await gateway.ticket()
        exchange.channel.closeFuture.whenComplete { _ in Task { await gateway.cancel(ticket) } }
        guard exchange.channel.isActive, let connection = await gateway.take(ticket) else { return }
        do {
            try await exchange.writeHead(status: 200, contentType: "application/octet-stream")
        } catch {
            await gateway.giveBack(connection)
            throw error
        }
        try await Tunnel.join(connection, to: &exchange)
    }
}
