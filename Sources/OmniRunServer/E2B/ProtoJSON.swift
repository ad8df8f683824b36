import AgentProtocol
import Foundation

/// A protobuf message in its JSON form, read leniently as the spec allows: a field by its
/// JSON (lowerCamelCase) or its proto (snake_case) name, integers as numbers or strings,
/// bytes as standard or URL-safe base64 with or without padding, unknown fields ignored.
/// Every value is the client's: sizes and ranges are checked, nothing traps.
struct ProtoJSON: Sendable {
    let value: JSONValue

    static func parse(_ bytes: [UInt8]) throws -> ProtoJSON {
        if bytes.isEmpty || bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) {
            return ProtoJSON(value: .object([:]))
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw ConnectError(.invalidArgument, "the message is not valid JSON")
        }
        guard case .object = value else { throw ConnectError(.invalidArgument, "the message must be a JSON object") }
        return ProtoJSON(value: value)
    }

    /// A field by its JSON name (`exitCode`) or proto name (`exit_code`); nil when absent or null.
    subscript(_ name: String) -> ProtoJSON? {
        guard case .object(let fields) = value else { return nil }
        let found = fields[name] ?? fields[Self.snakeCase(name)]
        guard let found, found != .null else { return nil }
        return ProtoJSON(value: found)
    }

    static func snakeCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }

    var fields: [String: ProtoJSON] {
        guard case .object(let fields) = value else { return [:] }
        return fields.filter { $0.value != .null }.mapValues { ProtoJSON(value: $0) }
    }

    func string(_ what: String, limit: Int = 4096) throws -> String {
        guard case .string(let text) = value else { throw ConnectError(.invalidArgument, "\(what) must be a string") }
        guard text.utf8.count <= limit, !text.utf8.contains(0) else {
            throw ConnectError(.invalidArgument, "\(what) is longer than \(limit) bytes or contains a NUL byte")
        }
        return text
    }

    func bool(_ what: String) throws -> Bool {
        guard case .bool(let flag) = value else { throw ConnectError(.invalidArgument, "\(what) must be a boolean") }
        return flag
    }

    /// A whole number in `range`, given as a JSON number or a decimal string.
    func integer(_ what: String, in range: ClosedRange<Int64>) throws -> Int64 {
        let number: Int64?
        switch value {
        case .number(let double):
            number = double.rounded() == double && double.magnitude < 9.0e15 ? Int64(double) : nil
        case .string(let text):
            number = text.utf8.count <= 20 ? Int64(text) : nil
        default:
            number = nil
        }
        guard let number, range.contains(number) else {
            throw ConnectError(.invalidArgument, "\(what) must be a whole number between \(range.lowerBound) and \(range.upperBound)")
        }
        return number
    }

    /// Bytes: standard or URL-safe base64, padded or not.
    func bytes(_ what: String, limit: Int) throws -> [UInt8] {
        guard case .string(var text) = value, text.utf8.count <= limit / 3 * 4 + 8 else {
            throw ConnectError(.invalidArgument, "\(what) must be base64 of at most \(limit) bytes")
        }
        text = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        text += String(repeating: "=", count: (4 - text.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: text), data.count <= limit else {
            throw ConnectError(.invalidArgument, "\(what) must be base64 of at most \(limit) bytes")
        }
        return Array(data)
    }

    /// A map of strings (`envs`), at most `limit` entries.
    func stringMap(_ what: String, limit: Int = 256) throws -> [String: String] {
        guard case .object(let fields) = value, fields.count <= limit else {
            throw ConnectError(.invalidArgument, "\(what) must be an object of at most \(limit) strings")
        }
        var result: [String: String] = [:]
        for (key, item) in fields {
            guard key.utf8.count <= 256, case .string(let text) = item, text.utf8.count <= 128 << 10, !text.utf8.contains(0) else {
                throw ConnectError(.invalidArgument, "\(what): every value must be a string (keys up to 256 bytes, values up to 128 KiB)")
            }
            result[key] = text
        }
        return result
    }

    func strings(_ what: String, limit: Int = 4096) throws -> [String] {
        guard case .array(let items) = value, items.count <= limit else {
            throw ConnectError(.invalidArgument, "\(what) must be a list of at most \(limit) strings")
        }
        return try items.map { try ProtoJSON(value: $0).string(what, limit: 128 << 10) }
    }
}
