import NIOCore
import OmniRunCore

/// First in an accepted connection's pipeline: counts it against its address's limit,
/// and answers one over the limit with a 503 of its own before closing it (nothing it
/// sends reaches the handlers behind).
final class AddressLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: ConnectionCounter
    private var refused = false

    init(limit: ConnectionCounter) {
        self.limit = limit
    }

    static let refusal = ListenerReply.make(
        503, "Service Unavailable", code: "unavailable", message: "too many connections from this address; try again later",
        extra: "Retry-After: 5\r\n")

    func handlerAdded(context: ChannelHandlerContext) {
        guard let address = context.channel.remoteAddress?.ipAddress else { return }
        if limit.admit(address) {
            let limit = self.limit
            context.channel.closeFuture.whenComplete { _ in limit.release(address) }
            return
        }
        refused = true
        // After the pipeline is set up (the connection's handlers are being added now).
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.assumeIsolated().execute {
            let context = loopBound.value
            context.writeAndFlush(Self.wrapOutboundOut(Self.refusal)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !refused else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(data, promise: promise)
    }
}
