import OmniRunError

/// A streaming `multipart/form-data` parser: fed chunks, it emits part starts,
/// body bytes and part ends without holding more than a delimiter's worth of a
/// part's body.
struct MultipartParser {
    enum Event: Equatable {
        case partStart(name: String, filename: String?)
        case data([UInt8])
        case partEnd
    }

    private enum State {
        case preamble, headers, body, done
    }

    private let dashBoundary: [UInt8]
    private let delimiter: [UInt8]
    private var buffer: [UInt8] = []
    private var state = State.preamble
    static let maxHeaderBytes = 16 << 10

    init(boundary: String) {
        dashBoundary = Array("--\(boundary)".utf8)
        delimiter = Array("\r\n--\(boundary)".utf8)
    }

    var isDone: Bool { state == .done }

    /// The boundary of a `multipart/form-data; boundary=...` content type.
    static func boundary(fromContentType contentType: String) throws -> String {
        guard contentType.lowercased().hasPrefix("multipart/form-data") else {
            throw OmniRunError(.invalidArgument, "expected a multipart/form-data body")
        }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let kv = parameter.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" {
                var value = kv[1].trimmingCharacters(in: .whitespaces)
                if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
                guard !value.isEmpty, value.count <= 200 else { break }
                return value
            }
        }
        throw OmniRunError(.invalidArgument, "multipart body without a boundary")
    }

    mutating func feed(_ chunk: some Sequence<UInt8>) throws -> [Event] {
        buffer.append(contentsOf: chunk)
        var events: [Event] = []
        while true {
            switch state {
            case .preamble:
                guard let range = buffer.firstRange(of: dashBoundary) else {
                    if buffer.count > dashBoundary.count { buffer.removeFirst(buffer.count - dashBoundary.count) }
                    return events
                }
                let after = range.upperBound
                guard buffer.count >= after + 2 else { return events }
                if buffer[after] == UInt8(ascii: "-") && buffer[after + 1] == UInt8(ascii: "-") {
                    state = .done
                    return events
                }
                buffer.removeFirst(after + 2)
                state = .headers
            case .headers:
                guard let range = buffer.firstRange(of: Array("\r\n\r\n".utf8)) else {
                    if buffer.count > Self.maxHeaderBytes { throw OmniRunError(.invalidArgument, "multipart part headers too large") }
                    return events
                }
                let text = String(decoding: buffer[..<range.lowerBound], as: UTF8.self)
                buffer.removeFirst(range.upperBound)
                let (name, filename) = Self.disposition(text)
                guard let name else { throw OmniRunError(.invalidArgument, "multipart part without a name") }
                events.append(.partStart(name: name, filename: filename))
                state = .body
            case .body:
                if let range = buffer.firstRange(of: delimiter) {
                    let after = range.upperBound
                    if buffer.count < after + 2 {
                        // Not yet known whether the body ends here: wait for two more bytes.
                        if range.lowerBound > 0 {
                            events.append(.data(Array(buffer[..<range.lowerBound])))
                            buffer.removeFirst(range.lowerBound)
                        }
                        return events
                    }
                    if range.lowerBound > 0 { events.append(.data(Array(buffer[..<range.lowerBound]))) }
                    events.append(.partEnd)
                    if buffer[after] == UInt8(ascii: "-") && buffer[after + 1] == UInt8(ascii: "-") {
                        state = .done
                        buffer.removeAll()
                        return events
                    }
                    buffer.removeFirst(after + 2)
                    state = .headers
                } else {
                    let keep = delimiter.count + 1
                    if buffer.count > keep {
                        events.append(.data(Array(buffer[..<(buffer.count - keep)])))
                        buffer.removeFirst(buffer.count - keep)
                    }
                    return events
                }
            case .done:
                buffer.removeAll()
                return events
            }
        }
    }

    static func disposition(_ headers: String) -> (String?, String?) {
        for line in headers.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
            var name: String?
            var filename: String?
            for parameter in line.split(separator: ";").dropFirst() {
                let kv = parameter.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                let key = kv[0].trimmingCharacters(in: .whitespaces).lowercased()
                var value = kv[1].trimmingCharacters(in: .whitespaces)
                if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
                if key == "name" { name = value }
                if key == "filename" { filename = value }
            }
            return (name, filename)
        }
        return (nil, nil)
    }
}

import Foundation
