import Foundation
import NIOCore
import NIOPosix
import OmniRunCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where a sandbox's connections to ports 443 and 80 go while its policy names domains
/// (its namespace redirects them here). For 443 it reads the TLS ClientHello's
/// server name (TLS is never terminated), for 80 the request's Host; `decide` says
/// where that name may go, and the connection is then relayed to that address with
/// the bytes read so far, or reset. The destination is the name's own address, so an
/// allowed name cannot be sent to another server.
///
/// Bounded: at most `maxConnectionsPerSandbox` connections per sandbox, 10 s to name a
/// destination, nothing read while the name is decided, and a relay that reads from one
/// side only while the other can take more (a fast sender and a slow reader meet in
/// the kernel's socket buffers, not in the server's memory).
final class DomainProxy: Sendable {
    /// The sandbox (by its namespace's address), the name it asked for, the port; the
    /// IPv4 address to connect to, or nil to refuse.
    typealias Decide = @Sendable (_ peer: String, _ name: String) async -> String?

    let tlsPort: Int
    let httpPort: Int
    private let channels: [any Channel]
    static let maxConnectionsPerSandbox = 256
    /// The most a connection may send before its name is known (a TLS record, an HTTP head).
    static let maxHeadBytes = 16384
    private let connections = ConnectionCounter(limit: DomainProxy.maxConnectionsPerSandbox)

    init(group: any EventLoopGroup, decide: @escaping Decide) throws {
        var channels: [any Channel] = []
        let connections = self.connections
        for port in [443, 80] {
            let channel = try ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    let peer = channel.remoteAddress?.ipAddress ?? ""
                    guard connections.admit(peer) else {
                        NameGate.reset(channel)
                        return channel.eventLoop.makeSucceededVoidFuture()
                    }
                    channel.closeFuture.whenComplete { _ in connections.release(peer) }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NameGate(port: port, decide: decide))
                    }
                }
                .bind(host: "0.0.0.0", port: 0).wait()
            channels.append(channel)
        }
        self.channels = channels
        tlsPort = channels[0].localAddress?.port ?? 0
        httpPort = channels[1].localAddress?.port ?? 0
    }

    func close() {
        for channel in channels { channel.close(promise: nil) }
    }

    /// The server name of a TLS ClientHello: `.name`, `.more` (incomplete), or `.none`.
    enum Parse: Equatable {
        case name(String)
        case more
        case none
    }

    static func serverName(_ bytes: [UInt8]) -> Parse {
        guard bytes.count >= 5 else { return .more }
        guard bytes[0] == 0x16 else { return .none }
        let recordLength = Int(bytes[3]) << 8 | Int(bytes[4])
        guard bytes.count >= 5 + recordLength else { return .more }
        var i = 5
        func need(_ n: Int) -> Bool { i + n <= 5 + recordLength }
        guard need(4), bytes[i] == 0x01 else { return .none }
        i += 4 + 2 + 32  // handshake header, version, random
        guard need(1) else { return .none }
        i += 1 + Int(bytes[i])  // session id
        guard need(2) else { return .none }
        i += 2 + (Int(bytes[i]) << 8 | Int(bytes[i + 1]))  // cipher suites
        guard need(1) else { return .none }
        i += 1 + Int(bytes[i])  // compression methods
        guard need(2) else { return .none }
        let end = min(5 + recordLength, i + 2 + (Int(bytes[i]) << 8 | Int(bytes[i + 1])))
        i += 2
        while i + 4 <= end {
            let type = Int(bytes[i]) << 8 | Int(bytes[i + 1])
            let length = Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            i += 4
            guard i + length <= end else { return .none }
            if type == 0, length >= 5, bytes[i + 2] == 0 {
                let nameLength = Int(bytes[i + 3]) << 8 | Int(bytes[i + 4])
                guard 5 + nameLength <= length else { return .none }
                return .name(String(decoding: bytes[(i + 5)..<(i + 5 + nameLength)], as: UTF8.self).lowercased())
            }
            i += length
        }
        return .none
    }

    /// The host of an HTTP/1 request head (without its port).
    static func hostHeader(_ bytes: [UInt8]) -> Parse {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return bytes.count > 16384 ? .none : .more }
        for line in text[..<end.lowerBound].split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == "host" else { continue }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            return .name(String(value.split(separator: ":").first ?? "").lowercased())
        }
        return .none
    }
}


/// Holds a new connection until its name is known and decided, then relays it or resets
/// it. It reads at most a head's worth: nothing more is read while the name is decided
/// and the destination connected (the guest's further bytes wait in its socket), and a
/// connection that names nothing within 10 s is reset.
private final class NameGate: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = NIOAny

    let port: Int
    let decide: DomainProxy.Decide
    private var received: [UInt8] = []
    private var deciding = false
    private var deadline: Scheduled<Void>?

    init(port: Int, decide: @escaping DomainProxy.Decide) {
        self.port = port
        self.decide = decide
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: .seconds(10)) { Self.reset(channel) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    /// Reads stop while a name is being decided.
    func read(context: ChannelHandlerContext) {
        guard !deciding else { return }
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received += buffer.readBytes(length: buffer.readableBytes) ?? []
        // A head, and what one read cycle already under way delivers after it: no more.
        guard received.count <= DomainProxy.maxHeadBytes + (1 << 20) else {
            Self.reset(context.channel)
            return
        }
        guard !deciding else { return }
        let parsed = port == 443 ? DomainProxy.serverName(received) : DomainProxy.hostHeader(received)
        switch parsed {
        case .more where received.count <= DomainProxy.maxHeadBytes:
            return
        case .more, .none:
            Self.reset(context.channel)
        case .name(let name):
            deciding = true
            deadline?.cancel()
            let peer = context.channel.remoteAddress?.ipAddress ?? ""
            let decide = self.decide
            let port = self.port
            let inbound = context.channel
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.makeFutureWithTask { await decide(peer, name) }
                .flatMap { destination -> EventLoopFuture<(any Channel)?> in
                    guard let destination else { return inbound.eventLoop.makeSucceededFuture(nil) }
                    return ClientBootstrap(group: inbound.eventLoop)
                        .connectTimeout(.seconds(10))
                        .connect(host: destination, port: port).map { Optional($0) }
                }
                .whenComplete { result in
                    let (gate, context) = loopBound.value
                    guard case .success(let outbound?) = result, inbound.isActive else {
                        if case .success(let outbound?) = result { outbound.close(promise: nil) }
                        Self.reset(inbound)
                        return
                    }
                    gate.relay(context: context, to: outbound)
                }
        }
    }

    private func relay(context: ChannelHandlerContext, to outbound: any Channel) {
        let inbound = context.channel
        let (guestSide, farSide) = RelayHalf.pair()
        do {
            try outbound.pipeline.syncOperations.addHandler(farSide)
            try context.pipeline.syncOperations.addHandler(guestSide)
        } catch {
            outbound.close(promise: nil)
            Self.reset(inbound)
            return
        }
        // What arrived while deciding is in `received` too.
        outbound.writeAndFlush(ByteBuffer(bytes: received), promise: nil)
        received = []
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
        // Reading resumes, under the relay's rule now.
        inbound.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Closes with a TCP reset (SO_LINGER 0), as a refused connection.
    static func reset(_ channel: any Channel) {
        let provider = channel as? any SocketOptionProvider
        if let provider {
            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            channel.close(promise: nil)
        }
    }
}

/// One side of a relay (both sides on one event loop): what it reads is written to its
/// partner's channel, and it reads only while the partner's channel is writable (below
/// its high-water mark), resuming when it becomes writable again. Either side closing
/// closes both.
private final class RelayHalf: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = NIOAny
    typealias OutboundOut = ByteBuffer

    private var partner: RelayHalf?
    private var context: ChannelHandlerContext?
    private var readPending = false

    static func pair() -> (RelayHalf, RelayHalf) {
        let first = RelayHalf()
        let second = RelayHalf()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? false {
            context.read()
        } else {
            readPending = true
        }
    }

    private func resumeReading() {
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
