import Foundation

/// Splits a server-sent event stream into whole events as bytes arrive, so each event
/// can be passed on the moment it is complete.
public struct SSEEventSplitter: Sendable {
    private var pending: [UInt8] = []
    /// Where the search for the next event's end resumes (bytes before it hold none).
    private var scanned = 0
    public static let maxEventBytes = 8 << 20

    public init() {}

    /// Adds bytes; returns the events completed by them (each with its blank line).
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [[UInt8]] {
        pending.append(contentsOf: bytes)
        var events: [[UInt8]] = []
        var start = 0
        // Back up two bytes: an ending "\n\r\n" may have begun in the previous feed.
        var index = max(0, scanned - 2)
        while index < pending.count {
            if pending[index] == UInt8(ascii: "\n") {
                // "\n\n" or "\n\r\n" ends an event.
                var next = index + 1
                if next < pending.count, pending[next] == UInt8(ascii: "\r") { next += 1 }
                if next < pending.count, pending[next] == UInt8(ascii: "\n") {
                    events.append(Array(pending[start...next]))
                    start = next + 1
                    index = next + 1
                    continue
                }
            }
            index += 1
        }
        pending.removeFirst(start)
        scanned = pending.count
        if pending.count > Self.maxEventBytes {
            throw SSEError.eventTooLarge
        }
        return events
    }

    /// Whatever is left when the stream ends (an event without its blank line).
    public mutating func finish() -> [UInt8]? {
        defer {
            pending = []
            scanned = 0
        }
        return pending.isEmpty ? nil : pending
    }

    /// The joined `data:` lines of one event.
    public static func data(of event: [UInt8]) -> String? {
        let text = String(decoding: event, as: UTF8.self)
        var lines: [Substring] = []
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let trimmed = line.hasSuffix("\r") ? line.dropLast() : line
            if trimmed.hasPrefix("data:") {
                var value = trimmed.dropFirst(5)
                if value.hasPrefix(" ") { value = value.dropFirst() }
                lines.append(value)
            }
        }
        return lines.isEmpty ? nil : lines.joined(separator: "\n")
    }

    public enum SSEError: Error {
        case eventTooLarge
    }
}

/// Server-sent event framing: `event: NAME` (when named) and one `data:` line, then a blank line.
enum SSEFrame {
    static func event(_ name: String?, _ object: [String: Any]) -> [UInt8] {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])) ?? Data("{}".utf8)
        var bytes: [UInt8] = []
        if let name { bytes += Array("event: \(name)\n".utf8) }
        bytes += Array("data: ".utf8) + Array(data) + Array("\n\n".utf8)
        return bytes
    }
}
