import Foundation

/// What one request used, as its answer (or the stream's usage event) reports it.
public struct LLMUsage: Sendable, Equatable {
    /// Input tokens, cached ones included (Anthropic reports those apart).
    public var promptTokens: Int64
    public var completionTokens: Int64
    /// What the upstream charged, in its credit unit (OpenRouter: USD), if it said.
    public var cost: Double?

    public init(promptTokens: Int64, completionTokens: Int64, cost: Double? = nil) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cost = cost
    }

    /// The upstream's cost in millionths of a cent (1 credit unit = 100 cents).
    public var reportedMicrocents: Int64? {
        guard let cost, cost.isFinite, cost >= 0, cost < 1e9 else { return nil }
        return Int64((cost * 100 * 1_000_000).rounded())
    }

    /// A token count from an answer: a non-negative whole number that fits, else 0.
    static func tokens(_ value: Any?) -> Int64 {
        guard let number = value as? NSNumber else { return 0 }
        let double = number.doubleValue
        guard double.isFinite, double >= 0, double < 1e15 else { return 0 }
        return Int64(double)
    }

    /// `usage.cost` as a number or a numeric string (OpenRouter).
    static func cost(_ usage: [String: Any]) -> Double? {
        if let number = usage["cost"] as? NSNumber { return number.doubleValue }
        if let text = usage["cost"] as? String { return Double(text) }
        return nil
    }
}
