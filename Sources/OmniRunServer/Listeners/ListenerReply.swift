import Foundation
import NIOCore

/// The few answers a listener writes itself, before or instead of the request's handler:
/// a JSON error (`{"error","message"}` like every API error) that closes the connection.
enum ListenerReply {
    static func body(code: String, message: String) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return ByteBuffer(bytes: (try? encoder.encode(["error": code, "message": message])) ?? Data("{}".utf8))
    }

    static func make(_ status: Int, _ reason: String, code: String, message: String, extra: String = "") -> ByteBuffer {
        var body = body(code: code, message: message)
        var text = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json; charset=utf-8\r\n" + extra
        text += "Content-Length: \(body.readableBytes)\r\nConnection: close\r\n\r\n"
        var buffer = ByteBuffer(string: text)
        buffer.writeBuffer(&body)
        return buffer
    }

    static let headerTimeout = make(
        408, "Request Timeout", code: "timeout", message: "the request's head did not arrive in time")
}
