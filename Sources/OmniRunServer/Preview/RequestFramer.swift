import Foundation
import NIOCore
import OmniRunError

/// The head of one HTTP/1.x request as the client sent it, kept as text so that it can be
/// passed on with only the fields the gateway changes.
struct RequestHead: Sendable, Equatable {
    var method: String
    var target: String
    var version: String
    var fields: [(name: String, value: String)]

    static let maxSize = 64 << 10

    static func == (lhs: RequestHead, rhs: RequestHead) -> Bool {
        lhs.method == rhs.method && lhs.target == rhs.target && lhs.version == rhs.version
            && lhs.fields.map(\.name) == rhs.fields.map(\.name) && lhs.fields.map(\.value) == rhs.fields.map(\.value)
    }

    /// Parses the bytes of a head (request line and fields, without the blank line).
    static func parse(_ text: String) throws -> RequestHead {
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { throw OmniRunError(.invalidArgument, "empty request") }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true)
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else {
            throw OmniRunError(.invalidArgument, "malformed request line")
        }
        var fields: [(String, String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex,
                !line[..<colon].contains(where: { $0 == " " || $0 == "\t" })
            else { throw OmniRunError(.invalidArgument, "malformed header line") }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            fields.append((String(line[..<colon]), value))
        }
        return RequestHead(
            method: String(requestLine[0]), target: String(requestLine[1]), version: String(requestLine[2]), fields: fields)
    }

    func value(_ name: String) -> String? {
        fields.first { $0.name.lowercased() == name }?.value
    }

    func values(_ name: String) -> [String] {
        fields.filter { $0.name.lowercased() == name }.map(\.value)
    }

    mutating func remove(_ name: String) {
        fields.removeAll { $0.name.lowercased() == name }
    }

    /// Replaces every field of that name with one value (in the first one's place).
    mutating func set(_ name: String, _ value: String) {
        if let index = fields.firstIndex(where: { $0.name.lowercased() == name.lowercased() }) {
            fields[index].value = value
            let kept = fields[index]
            fields.removeAll { $0.name.lowercased() == name.lowercased() }
            fields.insert(kept, at: min(index, fields.count))
        } else {
            fields.append((name, value))
        }
    }

    /// The Host without its port, lowercased.
    var hostName: String? {
        guard let host = value("host")?.lowercased(), !host.isEmpty else { return nil }
        if host.hasPrefix("[") { return host.split(separator: "]").first.map { String($0) + "]" } }
        return host.split(separator: ":", maxSplits: 1).first.map(String.init)
    }

    enum Body: Equatable {
        case none
        case length(Int)
        case chunked
    }

    /// How the request's body is delimited (RFC 9112 §6).
    func body() throws -> Body {
        if let encoding = value("transfer-encoding") {
            guard encoding.lowercased().split(separator: ",").last?.trimmingCharacters(in: .whitespaces) == "chunked" else {
                throw OmniRunError(.invalidArgument, "unsupported transfer-encoding")
            }
            return .chunked
        }
        let lengths = Set(values("content-length"))
        guard lengths.count <= 1 else { throw OmniRunError(.invalidArgument, "conflicting content-length") }
        guard let text = lengths.first else { return .none }
        guard let length = Int(text), length >= 0 else { throw OmniRunError(.invalidArgument, "invalid content-length") }
        return length == 0 ? .none : .length(length)
    }

    /// A request that asks to switch protocols (WebSocket): after it, bytes pass unparsed.
    var isUpgrade: Bool {
        value("upgrade") != nil
            && values("connection").contains { $0.lowercased().split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == "upgrade" } }
    }

    var serialized: ByteBuffer {
        var text = "\(method) \(target) \(version)\r\n"
        for field in fields { text += "\(field.name): \(field.value)\r\n" }
        text += "\r\n"
        return ByteBuffer(string: text)
    }
}

/// Follows a client's byte stream request by request (heads, then bodies framed by
/// `Content-Length` or chunked encoding), so that the gateway can check and rewrite every
/// head of a kept-alive connection while bodies stream through untouched. After an
/// upgrade request everything is passed on as it comes.
struct RequestFramer {
    enum Event: Equatable {
        case head(RequestHead)
        case body(ByteBuffer)
    }

    private enum State: Equatable {
        case head
        case length(Int)
        case chunkSize
        case chunkData(Int)
        case chunkEnd
        case trailer
        case raw
    }

    private var state = State.head
    private var pending = ByteBuffer()
    private var upgradeAfterBody = false
    /// The largest head (request line and fields) it accepts.
    let maxHeadSize: Int

    init(maxHeadSize: Int = RequestHead.maxSize) {
        self.maxHeadSize = maxHeadSize
    }

    /// Whether part of a request's head has arrived and not yet its end.
    var isInsideHead: Bool {
        state == .head && pending.readableBytesView.contains { $0 != 13 && $0 != 10 }
    }

    /// Feeds bytes; returns the events they complete, in order.
    mutating func feed(_ input: ByteBuffer) throws -> [Event] {
        var input = input
        var events: [Event] = []
        while true {
            switch state {
            case .raw:
                if input.readableBytes > 0 { events.append(.body(input.readSlice(length: input.readableBytes)!)) }
                return events
            case .head:
                pending.writeBuffer(&input)
                // Stray line breaks between requests are allowed (RFC 9112 §2.2).
                while pending.readableBytesView.starts(with: [13, 10]) { pending.moveReaderIndex(forwardBy: 2) }
                guard let end = pending.readableBytesView.firstRange(of: [13, 10, 13, 10]) else {
                    if pending.readableBytes > maxHeadSize {
                        throw OmniRunError(.payloadTooLarge, "request head larger than \(maxHeadSize) bytes")
                    }
                    return events
                }
                let length = end.lowerBound - pending.readerIndex
                guard length <= maxHeadSize else {
                    throw OmniRunError(.payloadTooLarge, "request head larger than \(maxHeadSize) bytes")
                }
                let text = pending.readString(length: length)!
                pending.moveReaderIndex(forwardBy: 4)
                let head = try RequestHead.parse(text)
                events.append(.head(head))
                upgradeAfterBody = head.isUpgrade
                switch try head.body() {
                case .none: state = upgradeAfterBody ? .raw : .head
                case .length(let count): state = .length(count)
                case .chunked: state = .chunkSize
                }
                input = pending
                pending = ByteBuffer()
            case .length(let remaining):
                guard input.readableBytes > 0 else { return events }
                let count = min(remaining, input.readableBytes)
                events.append(.body(input.readSlice(length: count)!))
                state = count == remaining ? (upgradeAfterBody ? .raw : .head) : .length(remaining - count)
            case .chunkSize, .chunkEnd, .trailer:
                guard let line = try readLine(&input) else { return events }
                events.append(.body(ByteBuffer(bytes: line + [13, 10])))
                switch state {
                case .chunkSize:
                    let text = String(decoding: line, as: UTF8.self).split(separator: ";").first?.trimmingCharacters(in: .whitespaces) ?? ""
                    guard let size = Int(text, radix: 16), size >= 0 else {
                        throw OmniRunError(.invalidArgument, "malformed chunk size")
                    }
                    state = size == 0 ? .trailer : .chunkData(size)
                case .chunkEnd:
                    guard line.isEmpty else { throw OmniRunError(.invalidArgument, "malformed chunk") }
                    state = .chunkSize
                default:
                    if line.isEmpty { state = upgradeAfterBody ? .raw : .head }
                }
            case .chunkData(let remaining):
                guard input.readableBytes > 0 else { return events }
                let count = min(remaining, input.readableBytes)
                events.append(.body(input.readSlice(length: count)!))
                state = count == remaining ? .chunkEnd : .chunkData(remaining - count)
            }
        }
    }

    /// A CRLF-terminated line (without the CRLF) from `pending` + `input`, or nil for more.
    private mutating func readLine(_ input: inout ByteBuffer) throws -> [UInt8]? {
        pending.writeBuffer(&input)
        guard let end = pending.readableBytesView.firstRange(of: [13, 10]) else {
            if pending.readableBytes > 8192 { throw OmniRunError(.invalidArgument, "chunk line too long") }
            return nil
        }
        let line = pending.readBytes(length: end.lowerBound - pending.readerIndex)!
        pending.moveReaderIndex(forwardBy: 2)
        input = pending
        pending = ByteBuffer()
        return line
    }
}
