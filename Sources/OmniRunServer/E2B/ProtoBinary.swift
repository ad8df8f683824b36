import AgentProtocol
import Foundation
import OmniRunControl

/// Protobuf's binary wire format for envd's messages, through their JSON form: a binary
/// message is read into the JSON tree the handlers already read (`ProtoJSON`), and an answer
/// written as JSON is turned into binary by the same schema (`EnvdSchemas`). Every length and
/// varint is the client's: each is checked against what is left, nothing traps, nesting is
/// bounded by the schemas.
struct ProtoSchema: Sendable {
    let fields: [ProtoField]

    init(_ fields: [ProtoField]) {
        self.fields = fields.sorted { $0.number < $1.number }
    }

    func field(number: UInt64) -> ProtoField? { fields.first { UInt64($0.number) == number } }
    func field(name: String) -> ProtoField? { fields.first { $0.name == name || ProtoJSON.snakeCase($0.name) == name } }
}

struct ProtoField: Sendable {
    let number: Int
    /// The JSON (lowerCamelCase) name.
    let name: String
    let kind: ProtoKind
    var repeated = false

    init(_ number: Int, _ name: String, _ kind: ProtoKind, repeated: Bool = false) {
        self.number = number
        self.name = name
        self.kind = kind
        self.repeated = repeated
    }
}

indirect enum ProtoKind: Sendable {
    case string, bytes, bool, uint32, sint32, int64
    case enumeration([Int: String])
    case message(ProtoSchema)
    /// `map<string, string>`.
    case stringMap
    /// `google.protobuf.Timestamp`, an RFC 3339 string in JSON.
    case timestamp
}

enum ProtoBinary {
    static func invalid(_ what: String) -> ConnectError {
        ConnectError(.invalidArgument, "the protobuf message is malformed: \(what)")
    }

    // MARK: Reading

    struct Reader {
        let bytes: [UInt8]
        var offset: Int
        let end: Int

        var atEnd: Bool { offset >= end }

        mutating func varint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while offset < end {
                let byte = bytes[offset]
                offset += 1
                guard shift < 64 else { throw invalid("a varint is longer than 10 bytes") }
                result |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
            throw invalid("a varint is cut off")
        }

        /// A length-delimited field's bounds.
        mutating func delimited() throws -> Reader {
            let length = try varint()
            guard length <= UInt64(end - offset) else { throw invalid("a length runs past the message") }
            let start = offset
            offset += Int(length)
            return Reader(bytes: bytes, offset: start, end: offset)
        }

        mutating func skip(wireType: UInt64) throws {
            switch wireType {
            case 0: _ = try varint()
            case 1: try advance(8)
            case 2: _ = try delimited()
            case 5: try advance(4)
            default: throw invalid("wire type \(wireType) is not accepted")
            }
        }

        mutating func advance(_ count: Int) throws {
            guard end - offset >= count else { throw invalid("a fixed-size field is cut off") }
            offset += count
        }

        var remaining: ArraySlice<UInt8> { bytes[offset..<end] }
    }

    /// A binary message as its JSON form (the names are the JSON names).
    static func decode(_ bytes: [UInt8], schema: ProtoSchema) throws -> JSONValue {
        var reader = Reader(bytes: bytes, offset: 0, end: bytes.count)
        return try decode(&reader, schema: schema)
    }

    static func decode(_ reader: inout Reader, schema: ProtoSchema) throws -> JSONValue {
        var object: [String: JSONValue] = [:]
        while !reader.atEnd {
            let key = try reader.varint()
            let number = key >> 3
            let wireType = key & 7
            guard number > 0 else { throw invalid("field number 0") }
            guard let field = schema.field(number: number) else {
                try reader.skip(wireType: wireType)
                continue
            }
            let value = try decodeValue(&reader, field: field, wireType: wireType)
            switch field.kind {
            case .stringMap:
                guard case .object(let entry) = value else { continue }
                var map: [String: JSONValue] = [:]
                if case .object(let existing) = object[field.name] { map = existing }
                if case .string(let key) = entry["key"] ?? .string("") {
                    map[key] = entry["value"] ?? .string("")
                }
                object[field.name] = .object(map)
            default:
                if field.repeated {
                    var items: [JSONValue] = []
                    if case .array(let existing) = object[field.name] { items = existing }
                    items.append(value)
                    object[field.name] = .array(items)
                } else {
                    object[field.name] = value
                }
            }
        }
        return .object(object)
    }

    static let mapEntry = ProtoSchema([ProtoField(1, "key", .string), ProtoField(2, "value", .string)])
    static let timestampSchema = ProtoSchema([ProtoField(1, "seconds", .int64), ProtoField(2, "nanos", .uint32)])

    static func decodeValue(_ reader: inout Reader, field: ProtoField, wireType: UInt64) throws -> JSONValue {
        func expect(_ type: UInt64) throws {
            guard wireType == type else { throw invalid("field \(field.name) has wire type \(wireType)") }
        }
        switch field.kind {
        case .string:
            try expect(2)
            let slice = try reader.delimited().remaining
            guard let text = String(validating: slice, as: UTF8.self) else { throw invalid("field \(field.name) is not UTF-8") }
            return .string(text)
        case .bytes:
            try expect(2)
            return .string(Data(try reader.delimited().remaining).base64EncodedString())
        case .bool:
            try expect(0)
            return .bool(try reader.varint() != 0)
        case .uint32:
            try expect(0)
            return .number(Double(UInt32(truncatingIfNeeded: try reader.varint())))
        case .sint32:
            try expect(0)
            let raw = UInt32(truncatingIfNeeded: try reader.varint())
            return .number(Double(Int32(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))))
        case .int64:
            try expect(0)
            return .string(String(Int64(bitPattern: try reader.varint())))
        case .enumeration(let names):
            try expect(0)
            let number = Int(truncatingIfNeeded: Int32(truncatingIfNeeded: try reader.varint()))
            return names[number].map { .string($0) } ?? .number(Double(number))
        case .message(let schema):
            try expect(2)
            var inner = try reader.delimited()
            return try decode(&inner, schema: schema)
        case .stringMap:
            try expect(2)
            var inner = try reader.delimited()
            return try decode(&inner, schema: mapEntry)
        case .timestamp:
            try expect(2)
            var inner = try reader.delimited()
            guard case .object(let parts) = try decode(&inner, schema: timestampSchema) else { return .null }
            var seconds: Int64 = 0
            if case .string(let text)? = parts["seconds"], let value = Int64(text) { seconds = value }
            guard (-62_135_596_800...253_402_300_799).contains(seconds) else { throw invalid("a timestamp is out of range") }
            return .string(isoDate(seconds * 1000))
        }
    }

    // MARK: Writing

    /// The JSON form of a message (as the handlers encode it) in binary.
    static func encode(_ value: JSONValue, schema: ProtoSchema) throws -> [UInt8] {
        guard case .object(let object) = value else { throw ConnectError(.internalError, "an answer is not a message") }
        var out: [UInt8] = []
        for field in schema.fields {
            guard let item = object[field.name], item != .null else { continue }
            switch field.kind {
            case .stringMap:
                guard case .object(let map) = item else { continue }
                for (key, entry) in map.sorted(by: { $0.key < $1.key }) {
                    let bytes = try encode(.object(["key": .string(key), "value": entry]), schema: mapEntry)
                    writeDelimited(&out, number: field.number, bytes)
                }
            default:
                if field.repeated, case .array(let items) = item {
                    for element in items { try encodeValue(&out, element, field: field) }
                } else {
                    try encodeValue(&out, item, field: field)
                }
            }
        }
        return out
    }

    static func encodeValue(_ out: inout [UInt8], _ value: JSONValue, field: ProtoField) throws {
        switch field.kind {
        case .string:
            guard case .string(let text) = value else { return }
            writeDelimited(&out, number: field.number, Array(text.utf8))
        case .bytes:
            guard case .string(let text) = value, let data = Data(base64Encoded: text) else { return }
            writeDelimited(&out, number: field.number, Array(data))
        case .bool:
            guard case .bool(let flag) = value else { return }
            writeVarint(&out, UInt64(field.number) << 3)
            writeVarint(&out, flag ? 1 : 0)
        case .uint32, .int64:
            guard let number = integer(value) else { return }
            writeVarint(&out, UInt64(field.number) << 3)
            writeVarint(&out, UInt64(bitPattern: number))
        case .sint32:
            guard let number = integer(value) else { return }
            let small = Int32(clamping: number)
            writeVarint(&out, UInt64(field.number) << 3)
            writeVarint(&out, UInt64(UInt32(bitPattern: (small << 1) ^ (small >> 31))))
        case .enumeration(let names):
            let number: Int?
            switch value {
            case .string(let name): number = names.first { $0.value == name }?.key
            default: number = integer(value).map { Int(clamping: $0) }
            }
            guard let number else { return }
            writeVarint(&out, UInt64(field.number) << 3)
            writeVarint(&out, UInt64(bitPattern: Int64(number)))
        case .message(let schema):
            writeDelimited(&out, number: field.number, try encode(value, schema: schema))
        case .stringMap:
            return
        case .timestamp:
            guard case .string(let text) = value, let date = Self.parseDate(text) else { return }
            // Milliseconds are what the answers carry; whole ones avoid binary fractions.
            let millis = Int64(clamping: Int64((date.timeIntervalSince1970 * 1000).rounded()))
            let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
            let nanos = (millis - seconds * 1000) * 1_000_000
            let bytes = try encode(
                .object(["seconds": .string(String(seconds)), "nanos": .number(Double(nanos))]), schema: timestampSchema)
            writeDelimited(&out, number: field.number, bytes)
        }
    }

    static func integer(_ value: JSONValue) -> Int64? {
        switch value {
        case .number(let double): double.rounded() == double && double.magnitude < 9.0e15 ? Int64(double) : nil
        case .string(let text): Int64(text)
        case .bool(let flag): flag ? 1 : 0
        default: nil
        }
    }

    static func parseDate(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    static func writeVarint(_ out: inout [UInt8], _ value: UInt64) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    static func writeDelimited(_ out: inout [UInt8], number: Int, _ bytes: [UInt8]) {
        writeVarint(&out, UInt64(number) << 3 | 2)
        writeVarint(&out, UInt64(bytes.count))
        out.append(contentsOf: bytes)
    }
}
