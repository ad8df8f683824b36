import Foundation
import Hummingbird
import NIOCore

/// Server-sent events as the SDK reads them: `data: <one-line JSON>` and a blank
/// line per event, LF endings, flushed per event, `: ping` comments while idle.
enum SSE {
    static func line<T: Encodable>(_ event: T) -> ByteBuffer {
        let data = (try? JSON.encoder.encode(event)) ?? Data("{}".utf8)
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(data)
        buffer.writeString("\n\n")
        return buffer
    }

    /// A streaming response fed by `produce`, which gets a `send` function.
    static func response(
        produce: @escaping @Sendable (_ send: @escaping @Sendable (ByteBuffer) async throws -> Void) async throws -> Void
    ) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        headers[.init("X-Accel-Buffering")!] = "no"
        let body = ResponseBody { writer in
            let bridge = StreamBridge<ByteBuffer>(capacity: 16)
            let producer = Task {
                do {
                    try await produce { buffer in try await bridge.send(buffer) }
                    await bridge.finish()
                } catch {
                    await bridge.finish()
                }
            }
            // Heartbeats keep proxies from closing an idle stream.
            let heartbeat = Task {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(15))
                    try await bridge.send(ByteBuffer(string: ": ping\n\n"))
                }
            }
            defer {
                producer.cancel()
                heartbeat.cancel()
            }
            do {
                while let buffer = try await bridge.next() {
                    try await writer.write(buffer)
                }
            } catch {
                producer.cancel()
                heartbeat.cancel()
                await bridge.finish()
                throw error
            }
            heartbeat.cancel()
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}
