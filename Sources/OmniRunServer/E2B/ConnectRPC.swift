import AgentProtocol
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OmniRunError

/// The Connect protocol (connectrpc.com/docs/protocol) as envd's clients speak it, JSON codec
/// only: unary calls are a JSON body answered by a JSON body; streams are envelopes (a flags
/// byte, a 4-byte big-endian length, the message) ending with an end-of-stream envelope
/// (flags 0x02) that carries the error, if any. Binary protobuf is answered with a 415.
enum ConnectRPC {
    static let unaryType = "application/json"
    static let streamType = "application/connect+json"
    /// The largest message read from a client (a stream's envelopes each, a unary body).
    static let maxMessage = 4 << 20

    enum Kind {
        case unary, serverStream, clientStream
    }

    /// The request's codec, from its content type: Connect's JSON or binary protobuf
    /// (`application/json` or `application/proto` for unary calls, `application/connect+json`
    /// or `application/connect+proto` for streams). gRPC and anything else is a 415.
    static func codec(_ request: Request, kind: Kind) throws -> ConnectCall.Codec {
        let raw = (request.headers[.contentType] ?? "").lowercased()
        let base = raw.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let prefix = kind == .unary ? "application/" : "application/connect+"
        if base == prefix + "json" { return .json }
        if base == prefix + "proto" { return .proto }
        throw ConnectError(
            base.hasPrefix("application/grpc") ? .unimplemented : .invalidArgument,
            "content-type must be \(prefix)json or \(prefix)proto (Connect; gRPC is not served)",
            status: .init(code: 415, reasonPhrase: "Unsupported Media Type"))
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }

    /// One envelope around a JSON message.
    static func envelope(_ payload: Data, flags: UInt8 = 0) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(payload.count + 5)
        buffer.writeInteger(flags)
        buffer.writeInteger(UInt32(clamping: payload.count))
        buffer.writeBytes(payload)
        return buffer
    }

    /// The end-of-stream envelope: `{}`, or the error.
    static func endOfStream(_ error: ConnectError?) -> ByteBuffer {
        guard let error else { return envelope(Data("{}".utf8), flags: 0x02) }
        let body = ["error": ["code": error.code.rawValue, "message": error.message]]
        return envelope((try? encoder.encode(body)) ?? Data("{}".utf8), flags: 0x02)
    }

    /// The deadline a call asks for (`connect-timeout-ms`; none when absent or zero), at most a day.
    static func deadline(_ request: Request) -> Duration? {
        guard let raw = request.headers[.init("connect-timeout-ms")!], raw.utf8.count <= 10,
            let millis = Int64(raw), millis > 0
        else { return nil }
        return .milliseconds(min(millis, 86_400_000))
    }

    /// How often an idle stream gets a keepalive message (`Keepalive-Ping-Interval`, seconds;
    /// nil when not asked for), between 1 and 300 seconds.
    static func keepaliveInterval(_ request: Request) -> Duration? {
        guard let raw = request.headers[.init("Keepalive-Ping-Interval")!], raw.utf8.count <= 6, let seconds = Int(raw),
            seconds > 0
        else { return nil }
        return .seconds(min(max(seconds, 1), 300))
    }

    /// A server stream: `produce` sends messages (each flushed as it is sent); what it throws,
    /// or the call's deadline passing, ends the stream with an error in its last envelope.
    /// At most 16 messages wait for a slow client (the producer then waits too).
    static func streamResponse(
        codec: ConnectCall.Codec, deadline: Duration?, keepalive: (interval: Duration, message: ByteBuffer)?,
        produce: @escaping @Sendable (_ send: @escaping @Sendable (ByteBuffer) async throws -> Void) async throws -> Void
    ) -> Response {
        let body = ResponseBody { writer in
            let bridge = StreamBridge<ByteBuffer>(capacity: 16)
            let producer = Task {
                do {
                    try await produce { buffer in try await bridge.send(buffer) }
                    await bridge.finish()
                } catch {
                    await bridge.finish(throwing: error)
                }
            }
            let timer = Task {
                guard let deadline else { return }
                try await Task.sleep(for: deadline)
                await bridge.finish(throwing: ConnectError(.deadlineExceeded, "the call's deadline (connect-timeout-ms) passed"))
            }
            let pinger = Task {
                guard let keepalive else { return }
                while !Task.isCancelled {
                    try await Task.sleep(for: keepalive.interval)
                    try await bridge.send(keepalive.message)
                }
            }
            defer {
                producer.cancel()
                timer.cancel()
                pinger.cancel()
            }
            var failure: ConnectError?
            while true {
                let next: ByteBuffer?
                do {
                    next = try await bridge.next()
                } catch {
                    // The producer's error, or the deadline: it goes into the last envelope.
                    failure = ConnectError(error)
                    break
                }
                guard let buffer = next else { break }
                // A write that fails means the client is gone: nothing more to say.
                try await writer.write(buffer)
            }
            producer.cancel()
            pinger.cancel()
            try await writer.write(endOfStream(failure))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: codec.streamType], body: body)
    }

    /// Reads a client stream's envelopes as they come, each at most `maxMessage` bytes.
    struct EnvelopeReader {
        private var pending: [UInt8] = []
        var codec: ConnectCall.Codec = .json
        var schema = EnvdSchemas.empty

        init(codec: ConnectCall.Codec = .json, schema: ProtoSchema = EnvdSchemas.empty) {
            self.codec = codec
            self.schema = schema
        }

        /// The complete messages in what has arrived so far (nil entries are end-of-stream).
        mutating func feed(_ chunk: ByteBuffer) throws -> [ProtoJSON?] {
            pending.append(contentsOf: chunk.readableBytesView)
            var messages: [ProtoJSON?] = []
            var start = 0
            while pending.count - start >= 5 {
                let flags = pending[start]
                let length =
                    Int(pending[start + 1]) << 24 | Int(pending[start + 2]) << 16 | Int(pending[start + 3]) << 8 | Int(pending[start + 4])
                guard length <= maxMessage else {
                    throw ConnectError(.resourceExhausted, "a message is larger than \(maxMessage) bytes")
                }
                guard flags & 0x01 == 0 else { throw ConnectError(.unimplemented, "compressed messages are not accepted") }
                guard pending.count - start - 5 >= length else { break }
                let payload = Array(pending[(start + 5)..<(start + 5 + length)])
                start += 5 + length
                messages.append(flags & 0x02 != 0 ? nil : try ConnectCall.message(payload, codec: codec, schema: schema))
            }
            pending.removeFirst(start)
            guard pending.count <= maxMessage + 5 else {
                throw ConnectError(.resourceExhausted, "a message is larger than \(maxMessage) bytes")
            }
            return messages
        }

        var isEmpty: Bool { pending.isEmpty }
    }
}

/// A Connect error: its code (the lower-case names of the spec) and message, and the HTTP
/// status a unary answer carries.
struct ConnectError: Error, Sendable {
    enum Code: String, Sendable {
        case canceled, unknown, internalError = "internal", invalidArgument = "invalid_argument"
        case deadlineExceeded = "deadline_exceeded", notFound = "not_found", alreadyExists = "already_exists"
        case permissionDenied = "permission_denied", resourceExhausted = "resource_exhausted"
        case failedPrecondition = "failed_precondition", aborted, outOfRange = "out_of_range", unimplemented
        case unavailable, dataLoss = "data_loss", unauthenticated
    }

    var code: Code
    var message: String
    var status: HTTPResponse.Status

    init(_ code: Code, _ message: String, status: HTTPResponse.Status? = nil) {
        self.code = code
        self.message = message
        self.status = status ?? Self.status(for: code)
    }

    /// Anything thrown, as the Connect error a client reads.
    init(_ error: any Error) {
        if let error = error as? ConnectError {
            self = error
            return
        }
        let normalized = APIError.normalize(error)
        let code: Code =
            switch normalized.code {
            case .invalidArgument, .unsupported: .invalidArgument
            case .unauthorized: .unauthenticated
            case .forbidden: .permissionDenied
            case .notFound: .notFound
            case .alreadyExists: .alreadyExists
            case .conflict: .failedPrecondition
            case .limitReached, .sandboxLimit, .payloadTooLarge, .noSpace, .spendCapReached: .resourceExhausted
            case .timeout, .upstreamTimeout: .deadlineExceeded
            case .unavailable, .machineFailed: .unavailable
            case .notImplemented: .unimplemented
            default: .internalError
            }
        self.init(code, normalized.message)
    }

    static func status(for code: Code) -> HTTPResponse.Status {
        switch code {
        case .canceled: .init(code: 499, reasonPhrase: "Client Closed Request")
        case .invalidArgument, .failedPrecondition, .outOfRange: .badRequest
        case .deadlineExceeded: .gatewayTimeout
        case .notFound: .notFound
        case .alreadyExists, .aborted: .conflict
        case .permissionDenied: .forbidden
        case .resourceExhausted: .tooManyRequests
        case .unimplemented: .notImplemented
        case .unavailable: .serviceUnavailable
        case .unauthenticated: .unauthorized
        case .unknown, .internalError, .dataLoss: .internalServerError
        }
    }

    /// A unary call's error answer: the status and `{"code", "message"}`.
    var response: Response {
        let data = (try? ConnectRPC.encoder.encode(["code": code.rawValue, "message": message])) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: ConnectRPC.unaryType], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
