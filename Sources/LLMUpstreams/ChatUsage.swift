import Foundation

/// What a chat completion (or the last chunk of a stream) says it used.
public struct ChatUsage: Sendable, Equatable {
    public var promptTokens: Int64
    public var completionTokens: Int64
    /// What the upstream charged, in its credit unit (OpenRouter: USD), if it said.
    public var cost: Double?

    public init(promptTokens: Int64, completionTokens: Int64, cost: Double? = nil) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cost = cost
    }

    /// Reads `usage` from a decoded completion or chunk; nil when there is none.
    public static func from(_ object: [String: Any]) -> ChatUsage? {
        guard let usage = object["usage"] as? [String: Any] else { return nil }
        let prompt = (usage["prompt_tokens"] as? NSNumber)?.int64Value ?? 0
        let completion = (usage["completion_tokens"] as? NSNumber)?.int64Value ?? 0
        var cost = (usage["cost"] as? NSNumber)?.doubleValue
        if cost == nil, let text = usage["cost"] as? String { cost = Double(text) }
        return ChatUsage(promptTokens: prompt, completionTokens: completion, cost: cost)
    }

    /// The upstream's cost in millionths of a cent (1 credit unit = 100 cents).
    public var reportedMicrocents: Int64? {
        guard let cost, cost.isFinite, cost >= 0 else { return nil }
        return Int64((cost * 100 * 1_000_000).rounded())
    }
}

/// Splits a server-sent event stream into whole events as bytes arrive, so each event
/// can be passed on the moment it is complete.
public struct SSEEventSplitter: Sendable {
    private var pending: [UInt8] = []
    public static let maxEventBytes = 8 << 20

    public init() {}

    /// Adds bytes; returns the events completed by them (each with its blank line).
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [[UInt8]] {
        pending.append(contentsOf: bytes)
        var events: [[UInt8]] = []
        var start = 0
        var index = 0
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
        if pending.count > Self.maxEventBytes {
            throw SSEError.eventTooLarge
        }
        return events
    }

    /// Whatever is left when the stream ends (an event without its blank line).
    public mutating func finish() -> [UInt8]? {
        defer { pending = [] }
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
