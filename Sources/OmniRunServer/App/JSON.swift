import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunError

enum JSON {
    static var encoder: JSONEncoder { WireFormat.encoder }

    /// A JSON response (always `Content-Type: application/json`).
    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func noContent() -> Response {
        Response(status: .noContent)
    }

    /// The whole body, at most `limit` bytes (the request keeps it for whoever reads it
    /// next); past the limit a 413 saying `message`.
    static func collect(_ request: inout Request, limit: Int, message: String? = nil) async throws -> ByteBuffer {
        do {
            return try await request.collectBody(upTo: limit)
        } catch {
            throw OmniRunError(.payloadTooLarge, message ?? "request body is larger than \(limit) bytes")
        }
    }

    /// Reads and decodes a JSON body, bounded; a missing or empty body decodes as `{}`.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T {
        var request = request
        let buffer = try await collect(&request, limit: limit)
        let bytes = buffer.readableBytes == 0 ? Data("{}".utf8) : Data(buffer: buffer)
        do {
            return try JSONDecoder().decode(type, from: bytes)
        } catch let error as DecodingError {
            throw OmniRunError(.invalidArgument, "malformed JSON body: \(APIError.describe(error))")
        } catch {
            throw OmniRunError(.invalidArgument, "malformed JSON body")
        }
    }
}

extension Request {
    /// Query parameters decoded as a browser's URLSearchParams encodes them ('+' is a space).
    var query: [String: String] {
        guard let raw = uri.query else { return [:] }
        var result: [String: String] = [:]
        for pair in raw.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = Self.formDecode(String(parts[0]))
            result[key] = parts.count > 1 ? Self.formDecode(String(parts[1])) : ""
        }
        return result
    }

    static func formDecode(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), let h = iterator.next(), let l = iterator.next(),
                let value = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func requiredQuery(_ name: String) throws -> String {
        guard let value = query[name], !value.isEmpty else {
            throw OmniRunError(.invalidArgument, "query parameter '\(name)' is required")
        }
        return value
    }
}
