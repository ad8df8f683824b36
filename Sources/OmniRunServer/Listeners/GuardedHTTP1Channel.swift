import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import OmniRunCore

/// Hummingbird's HTTP/1 channel with the limits every OmniRun HTTP listener applies:
/// connections per client address (503 past it), the header-read timeout (408), the
/// keep-alive timeout (Hummingbird's idle timeout: no request in progress), and the
/// largest request head (431). Used by the API and by the host gateways.
struct GuardedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = HTTP1Channel.Value

    struct Limits: Sendable {
        var headerTimeout: Duration
        var idleTimeout: Duration
        var maxHeaderBytes: Int
        /// Nil: no limit per address (the host gateway: its peer is a socket pair).
        var perAddress: ConnectionCounter?
    }

    let responder: HTTPChannelHandler.Responder
    let limits: Limits
    /// Handlers behind the HTTP decoder (after the limits' own).
    let additionalChannelHandlers: @Sendable () -> [any RemovableChannelHandler]

    init(
        responder: @escaping HTTPChannelHandler.Responder, limits: Limits,
        additionalChannelHandlers: @escaping @Sendable () -> [any RemovableChannelHandler] = { [] }
    ) {
        self.responder = responder
        self.limits = limits
        self.additionalChannelHandlers = additionalChannelHandlers
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard channel.eventLoop.inEventLoop else {
            return channel.eventLoop.flatSubmit { self.setup(channel: channel, logger: logger) }
        }
        let timeout = RequestHeadTimeoutHandler(timeout: TimeAmount(limits.headerTimeout))
        do {
            if let perAddress = limits.perAddress {
                try channel.pipeline.syncOperations.addHandler(AddressLimitHandler(limit: perAddress))
            }
            try channel.pipeline.syncOperations.addHandler(timeout)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        let observer = NIOLoopBound(RequestHeadObserver(timeout: timeout), eventLoop: channel.eventLoop)
        let additional = additionalChannelHandlers
        let http = HTTP1Channel(
            responder: responder,
            configuration: .init(
                additionalChannelHandlers: [observer.value] + additional(),
                idleTimeout: TimeAmount(limits.idleTimeout),
                httpDecoderConfiguration: .init(
                    maxHeaderFieldSize: limits.maxHeaderBytes, maxHeaderListSize: limits.maxHeaderBytes, maxHeaderFieldCount: 500)))
        return http.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// The API's HTTP/1 server with OmniRun's listener limits.
    static func guardedHTTP1(
        limits: GuardedHTTP1Channel.Limits, additionalChannelHandlers: @escaping @Sendable () -> [any RemovableChannelHandler]
    ) -> HTTPServerBuilder {
        .init { responder in
            GuardedHTTP1Channel(responder: responder, limits: limits, additionalChannelHandlers: additionalChannelHandlers)
        }
    }
}
