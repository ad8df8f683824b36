import AgentProtocol
import Foundation
import Hummingbird
import NIOCore

/// One Connect call in its codec: how its request is read and its answer written. Handlers
/// read every request as JSON (`ProtoJSON`) and write every answer as an `Encodable` in its
/// JSON form; with the binary codec both go through the call's schemas (`ProtoBinary`).
/// Errors are JSON in either codec, as Connect specifies.
struct ConnectCall: Sendable {
    enum Codec: Sendable {
        case json, proto

        var unaryType: String { self == .json ? "application/json" : "application/proto" }
        var streamType: String { self == .json ? "application/connect+json" : "application/connect+proto" }
    }

    let codec: Codec
    /// The schema of the call's answer messages.
    let output: ProtoSchema

    /// A unary call: its message, read bounded (an empty body is the empty message).
    static func unary(_ request: Request, input: ProtoSchema, output: ProtoSchema) async throws -> (ConnectCall, ProtoJSON) {
        let codec = try ConnectRPC.codec(request, kind: .unary)
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: ConnectRPC.maxMessage)
        } catch {
            throw ConnectError(.resourceExhausted, "the message is larger than \(ConnectRPC.maxMessage) bytes")
        }
        let message = try message(Array(buffer.readableBytesView), codec: codec, schema: input)
        return (ConnectCall(codec: codec, output: output), message)
    }

    /// A server-stream call: the one message of its (enveloped) request.
    static func serverStream(_ request: Request, input: ProtoSchema, output: ProtoSchema) async throws -> (ConnectCall, ProtoJSON) {
        let codec = try ConnectRPC.codec(request, kind: .serverStream)
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: ConnectRPC.maxMessage + 64)
        } catch {
            throw ConnectError(.resourceExhausted, "the message is larger than \(ConnectRPC.maxMessage) bytes")
        }
        var reader = ConnectRPC.EnvelopeReader(codec: codec, schema: input)
        guard let first = try reader.feed(buffer).first, let message = first else {
            throw ConnectError(.invalidArgument, "the request has no message")
        }
        return (ConnectCall(codec: codec, output: output), message)
    }

    /// A message's bytes in a codec, as JSON.
    static func message(_ bytes: [UInt8], codec: Codec, schema: ProtoSchema) throws -> ProtoJSON {
        switch codec {
        case .json: return try ProtoJSON.parse(bytes)
        case .proto: return ProtoJSON(value: try ProtoBinary.decode(bytes, schema: schema))
        }
    }

    /// An answer message in the call's codec.
    func bytes<T: Encodable>(_ message: T) -> Data {
        let json = (try? ConnectRPC.encoder.encode(message)) ?? Data("{}".utf8)
        guard codec == .proto else { return json }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: json),
            let binary = try? ProtoBinary.encode(value, schema: output)
        else { return Data() }
        return Data(binary)
    }

    /// A unary answer: 200 with the message.
    func respond<T: Encodable>(_ message: T) -> Response {
        Response(status: .ok, headers: [.contentType: codec.unaryType], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes(message))))
    }

    /// One stream message in its envelope.
    func envelope<T: Encodable>(_ message: T) -> ByteBuffer {
        ConnectRPC.envelope(bytes(message))
    }

    /// A server stream in the call's codec (`ConnectRPC.streamResponse`).
    func stream(
        _ request: Request, keepalive: (some Encodable)?,
        produce: @escaping @Sendable (_ send: @escaping @Sendable (ByteBuffer) async throws -> Void) async throws -> Void
    ) -> Response {
        let ping = ConnectRPC.keepaliveInterval(request).flatMap { interval in keepalive.map { (interval, envelope($0)) } }
        return ConnectRPC.streamResponse(codec: codec, deadline: ConnectRPC.deadline(request), keepalive: ping, produce: produce)
    }
}
