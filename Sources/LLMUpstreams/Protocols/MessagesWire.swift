import Foundation
import OmniRunError

/// Anthropic Messages: `messages` (content blocks: text, tool_use, tool_result, …) in,
/// `content` blocks out. A stream is `message_start` (input usage), `content_block_start`/
/// `_delta`/`_stop`, `message_delta` (output usage so far), `message_stop`, `ping`, `error`.
enum MessagesWire: LLMWire {
    static func validate(_ object: [String: Any]) throws {
        try validateMessages(object)
        try LLMRequest.requirePositive(object, "max_tokens", required: true)
    }

    /// What a message request and a token count share: a non-empty list of messages with roles.
    static func validateMessages(_ object: [String: Any]) throws {
        guard let messages = object["messages"] as? [Any], !messages.isEmpty,
            messages.allSatisfy({ (($0 as? [String: Any])?["role"] as? String) != nil })
        else {
            throw OmniRunError(.invalidArgument, "messages must be a non-empty array of {role, content} objects")
        }
        if let system = object["system"], !(system is NSNull), !(system is String), !(system is [Any]) {
            throw OmniRunError(.invalidArgument, "system must be a string or an array of content blocks")
        }
    }

    static func prepareUpstream(_ body: inout [String: Any], stream: Bool, requestCost: Bool) {}

    /// Input tokens count those written to and read from the prompt cache too.
    static func usage(ofAnswer object: [String: Any]) -> LLMUsage? {
        guard let usage = object["usage"] as? [String: Any] else { return nil }
        return LLMUsage(promptTokens: inputTokens(usage), completionTokens: LLMUsage.tokens(usage["output_tokens"]), cost: LLMUsage.cost(usage))
    }

    static func inputTokens(_ usage: [String: Any]) -> Int64 {
        let parts = [usage["input_tokens"], usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]]
        return parts.reduce(Int64(0)) { $0.addingReportingOverflow(LLMUsage.tokens($1)).partialValue }
    }

    static func characters(ofAnswer object: [String: Any]) -> Int {
        (object["content"] as? [[String: Any]] ?? []).reduce(0) { total, block in
            if let text = block["text"] as? String { return total + text.count }
            if let input = block["input"], let data = try? JSONSerialization.data(withJSONObject: input) { return total + data.count }
            return total
        }
    }

    static func note(_ event: [String: Any], in scan: inout LLMStreamScan) -> Bool {
        switch event["type"] as? String {
        case "message_start":
            if let usage = ((event["message"] as? [String: Any])?["usage"] as? [String: Any]) {
                scan.usage = LLMUsage(
                    promptTokens: inputTokens(usage), completionTokens: LLMUsage.tokens(usage["output_tokens"]), cost: LLMUsage.cost(usage))
            }
        case "message_delta":
            // Counts here are totals so far; input counts appear when the upstream revises them.
            if let usage = event["usage"] as? [String: Any] {
                var total = scan.usage ?? LLMUsage(promptTokens: 0, completionTokens: 0)
                if usage["output_tokens"] != nil { total.completionTokens = LLMUsage.tokens(usage["output_tokens"]) }
                if usage["input_tokens"] != nil { total.promptTokens = max(total.promptTokens, inputTokens(usage)) }
                if let cost = LLMUsage.cost(usage) { total.cost = cost }
                scan.usage = total
            }
        case "content_block_delta":
            let delta = event["delta"] as? [String: Any] ?? [:]
            for key in ["text", "partial_json", "thinking"] {
                if let text = delta[key] as? String { scan.contentCharacters += text.count }
            }
        default:
            break
        }
        return true
    }

    static func failureEvent(code: String, message: String, after scan: LLMStreamScan) -> [UInt8] {
        let type = code == OmniRunError.Code.upstreamTimeout.rawValue ? "timeout_error" : "api_error"
        return SSEFrame.event("error", ["type": "error", "error": ["type": type, "message": message]])
    }
}
