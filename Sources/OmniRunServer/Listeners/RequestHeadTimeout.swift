import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// The header-read timeout of an HTTP/1 connection (slowloris): a request's head must
/// arrive whole within `timeout` of the connection's start, or of the first byte of a
/// kept-alive connection's next request. Otherwise the connection is answered 408 (when
/// nothing is being answered on it) and closed. Between requests the listener's keep-alive
/// or idle timeout applies instead.
///
/// It sits first in the pipeline. Behind Hummingbird's decoder, `RequestHeadObserver` tells
/// it when a head was decoded and when its answer ended, and it arms itself on a request's
/// first byte (`armsOnRead`); the preview gateway, which frames requests itself, calls
/// `arm()` and `disarm()` (through `HeadClock`).
final class RequestHeadTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let armsOnRead: Bool
    private var context: ChannelHandlerContext?
    private var deadline: Scheduled<Void>?
    /// Requests whose head arrived and whose answer has not ended, and those whose body is
    /// still arriving (an answer may end first: a refusal before the upload is done).
    private var inFlight = 0
    private var bodiesArriving = 0
    /// Whether any byte went to the client: the preview gateway does not know where its
    /// answers end, so once it answered, a late head only closes the connection.
    private var answered = false
    private var expired = false

    init(timeout: TimeAmount, armsOnRead: Bool = true) {
        self.timeout = timeout
        self.armsOnRead = armsOnRead
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { arm() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        arm()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !expired else { return }
        // The first byte of a request while none is in progress starts its clock.
        if armsOnRead, inFlight == 0, bodiesArriving == 0 { arm() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if unwrapOutboundIn(data).readableBytes > 0 { answered = true }
        context.write(data, promise: promise)
    }

    /// A request's head was decoded.
    func headReceived() {
        inFlight += 1
        bodiesArriving += 1
        disarm()
    }

    /// A request's body (possibly empty) has arrived whole.
    func bodyEnded() {
        bodiesArriving = max(0, bodiesArriving - 1)
    }

    /// A request's answer ended; the connection may be kept alive for the next one.
    func responseEnded() {
        inFlight = max(0, inFlight - 1)
    }

    /// Starts the clock unless it runs already.
    func arm() {
        guard deadline == nil, !expired, let context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            loopBound.value.expire()
        }
    }

    func disarm() {
        deadline?.cancel()
        deadline = nil
    }

    private func expire() {
        deadline = nil
        guard let context, inFlight == 0, !expired else { return }
        expired = true
        guard armsOnRead || !answered else {
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(Self.wrapOutboundOut(ListenerReply.headerTimeout)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

/// A connection's `RequestHeadTimeoutHandler`, for code that runs outside its event loop.
struct HeadClock: Sendable {
    private let handler: NIOLoopBound<RequestHeadTimeoutHandler>

    init(_ handler: RequestHeadTimeoutHandler, eventLoop: any EventLoop) {
        self.handler = NIOLoopBound(handler, eventLoop: eventLoop)
    }

    func arm() {
        let handler = self.handler
        handler.eventLoop.execute { handler.value.arm() }
    }

    func disarm() {
        let handler = self.handler
        handler.eventLoop.execute { handler.value.disarm() }
    }
}

/// Closes a connection over which nothing moved for `IdleStateHandler`'s `allTimeout`.
final class IdleCloseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .all {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// Behind the HTTP decoder: reports decoded heads and ended answers to the connection's
/// `RequestHeadTimeoutHandler`, and answers a head past the size limit with 431 (the
/// decoder's `headerOverflow`) instead of a bare 400.
final class RequestHeadObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: RequestHeadTimeoutHandler
    private var failed = false

    init(timeout: RequestHeadTimeoutHandler) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: timeout.headReceived()
        case .end: timeout.bodyEnded()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { timeout.responseEnded() }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, parserError == .headerOverflow else {
            context.fireErrorCaught(error)
            return
        }
        guard !failed else { return }
        failed = true
        let body = ListenerReply.body(code: "payload_too_large", message: "the request's head is larger than this server accepts")
        var head = HTTPResponse(status: .init(code: 431, reasonPhrase: "Request Header Fields Too Large"))
        head.headerFields[.contentType] = "application/json; charset=utf-8"
        head.headerFields[.contentLength] = "\(body.readableBytes)"
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
