import Foundation
import NIOCore
import Testing

@testable import OmniRunServer

/// The Connect and protobuf-JSON readers on their own: values at and past every limit.
@Suite("E2B endpoint: message readers")
struct E2BReaderTests {
    @Test func envelopesSplitAnywhereAreReadWhole() throws {
        var whole = ByteBuffer()
        for message in [#"{"a":1}"#, #"{"data":{"input":{"stdin":"YQ=="}}}"#] {
            whole.writeInteger(UInt8(0))
            whole.writeInteger(UInt32(message.utf8.count))
            whole.writeString(message)
        }
        whole.writeInteger(UInt8(2))
        whole.writeInteger(UInt32(2))
        whole.writeString("{}")
        let bytes = Array(whole.readableBytesView)
        for cut in 0...bytes.count {
            var reader = ConnectRPC.EnvelopeReader()
            var messages = try reader.feed(ByteBuffer(bytes: bytes[..<cut]))
            messages += try reader.feed(ByteBuffer(bytes: bytes[cut...]))
            #expect(messages.count == 3, "cut at \(cut)")
            #expect(messages.last.map { $0 == nil } == true)
            #expect(reader.isEmpty)
        }
    }

    @Test func integersAndBytesOutsideTheirRangesAreErrorsNotTraps() throws {
        let cases = [
            #"{"n":9223372036854775808}"#, #"{"n":"9223372036854775808"}"#, #"{"n":-9223372036854775809}"#, #"{"n":1.5}"#,
            #"{"n":1e308}"#, #"{"n":"-0x10"}"#, #"{"n":true}"#,
        ]
        for text in cases {
            let message = try ProtoJSON.parse(Array(text.utf8))
            #expect(throws: ConnectError.self, "\(text)") { try message["n"]?.integer("n", in: 0...Int64(UInt32.max)) }
        }
        let fine = try ProtoJSON.parse(Array(#"{"exit_code":"42","b":"YWJj","u":"YWJj_-8"}"#.utf8))
        #expect(try fine["exitCode"]?.integer("exitCode", in: 0...100) == 42)
        #expect(try fine["b"]?.bytes("b", limit: 3) == Array("abc".utf8))
        #expect(throws: ConnectError.self) { try fine["b"]?.bytes("b", limit: 2) }
        #expect(try fine["u"]?.bytes("u", limit: 16).count == 5)
        #expect(throws: ConnectError.self) { try ProtoJSON.parse(Array(#""just a string""#.utf8)) }
        #expect(try ProtoJSON.parse([]).fields.isEmpty)
    }
}

/// Connect's binary codec: envd's messages read and written by their schemas, and
/// malformed binary refused without trapping.
@Suite("E2B endpoint: binary protobuf")
struct E2BBinaryTests {
    /// A field's key and a varint, written by hand (as another protobuf implementation would).
    static func varint(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        ProtoBinary.writeVarint(&out, value)
        return out
    }

    @Test func aStartRequestWrittenByHandReadsAsItsJSON() throws {
        // StartRequest{process{cmd:"/bin/sh", args:["-c","echo"], envs{A:"1"}, cwd:"/tmp"}, pty{size{cols:80,rows:24}}, stdin:true}
        var config: [UInt8] = []
        ProtoBinary.writeDelimited(&config, number: 1, Array("/bin/sh".utf8))
        ProtoBinary.writeDelimited(&config, number: 2, Array("-c".utf8))
        ProtoBinary.writeDelimited(&config, number: 2, Array("echo".utf8))
        var entry: [UInt8] = []
        ProtoBinary.writeDelimited(&entry, number: 1, Array("A".utf8))
        ProtoBinary.writeDelimited(&entry, number: 2, Array("1".utf8))
        ProtoBinary.writeDelimited(&config, number: 3, entry)
        ProtoBinary.writeDelimited(&config, number: 4, Array("/tmp".utf8))
        let size: [UInt8] = [0x08] + Self.varint(80) + [0x10] + Self.varint(24)
        var pty: [UInt8] = []
        ProtoBinary.writeDelimited(&pty, number: 1, size)
        var start: [UInt8] = []
        ProtoBinary.writeDelimited(&start, number: 1, config)
        ProtoBinary.writeDelimited(&start, number: 2, pty)
        start += [0x20, 0x01]
        // An unknown field of every wire type is skipped.
        start += [0x78] + Self.varint(5) + [0x79] + Array(repeating: 0, count: 8) + [0x7d, 1, 2, 3, 4]
        let message = ProtoJSON(value: try ProtoBinary.decode(start, schema: EnvdSchemas.startRequest))
        let request = try E2BProcessRPC.startRequest(message, user: nil)
        #expect(request.argv == ["/bin/sh", "-c", "echo"])
        #expect(request.env == ["A": "1"])
        #expect(request.cwd == "/tmp")
        #expect(request.pty?.cols == 80 && request.pty?.rows == 24)
        #expect(request.stdin)
    }

    @Test func answersRoundTripThroughTheirSchemas() throws {
        let call = ConnectCall(codec: .proto, output: EnvdSchemas.eventResponse)
        let end = E2BProcessRPC.StreamMessage(event: .init(end: .init(exitCode: -1, exited: false, status: "signal: killed")))
        let bytes = Array(call.bytes(end))
        let back = try ProtoBinary.decode(bytes, schema: EnvdSchemas.eventResponse)
        let read = ProtoJSON(value: back)
        #expect(try read["event"]?["end"]?["exitCode"]?.integer("", in: -10...10) == -1)
        #expect(try read["event"]?["end"]?["status"]?.string("") == "signal: killed")
        let data = E2BProcessRPC.StreamMessage(event: .init(data: .init(stdout: Data([0, 255, 10]).base64EncodedString())))
        let decoded = ProtoJSON(value: try ProtoBinary.decode(Array(call.bytes(data)), schema: EnvdSchemas.eventResponse))
        #expect(try decoded["event"]?["data"]?["stdout"]?.bytes("", limit: 8) == [0, 255, 10])
    }

    @Test func malformedBinaryIsAnErrorNotATrap() throws {
        let cases: [[UInt8]] = [
            [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],  // a length of 4 GiB
            [0x0a, 0x05, 0x41],  // a length past the end
            Array(repeating: 0xff, count: 11) + [0x01],  // a key varint longer than 10 bytes
            [0x0a],  // a key without its value
            [0x0b, 0x00],  // wire type 3 (groups)
            [0x00, 0x00],  // field number 0
            [0x0a, 0x02, 0xc3, 0x28],  // a string that is not UTF-8
            [0x08, 0x01],  // path (a string) sent as a varint
        ]
        for bytes in cases {
            #expect(throws: ConnectError.self, "\(bytes)") { try ProtoBinary.decode(bytes, schema: EnvdSchemas.pathRequest) }
        }
        // Values at the edges of their types: taken or refused, never a trap.
        // A uint32 past its range is cut to 32 bits, as protobuf parsers do; what remains is checked.
        for depth: UInt64 in [UInt64.max, (1 << 40) + 100, 65] {
            let list: [UInt8] = [0x0a, 0x01, 0x2f, 0x10] + Self.varint(depth)
            let decoded = ProtoJSON(value: try ProtoBinary.decode(list, schema: EnvdSchemas.listDirRequest))
            #expect(throws: ConnectError.self, "\(depth)") { try decoded["depth"]?.integer("depth", in: 0...64) }
        }
        var timestamp: [UInt8] = []
        ProtoBinary.writeDelimited(&timestamp, number: 9, [0x08] + Self.varint(UInt64(bitPattern: Int64.min)))
        #expect(throws: ConnectError.self) { try ProtoBinary.decode(timestamp, schema: EnvdSchemas.entryInfo) }
    }
}


@Suite("E2B endpoint: list filters")
struct E2BListFilterTests {
    /// The SDK quotes each key and value, urlencodes the pairs, and the HTTP client encodes the
    /// parameter once more; after the router's own decoding the filter reads as written.
    @Test func metadataFiltersReadAsTheSDKWroteThem() throws {
        // `{"special": "a b=c&d 100%", "k": "v"}` after the router decoded the parameter once.
        let filter = try E2BControlController.metadataFilter("special=a%2520b%253Dc%2526d%2520100%2525&k=v")
        #expect(filter == ["special": "a b=c&d 100%", "k": "v"])
        #expect(throws: (any Error).self) { try E2BControlController.metadataFilter(String(repeating: "a", count: 9000)) }
        // A malformed escape is no error and no trap: the pair is still read.
        #expect(try E2BControlController.metadataFilter("bad=%ZZ%")["bad"] != nil)
    }
}
