import Foundation
import OmniRunError

/// OpenAI chat completions: `messages` in, `choices` out; a stream's usage comes in a last
/// chunk without choices, sent only when asked for (`stream_options.include_usage`).
enum ChatCompletionsWire: LLMWire {
    static func validate(_ object: [String: Any]) throws {
        guard let messages = object["messages"] as? [Any], !messages.isEmpty,
            messages.allSatisfy({ (($0 as? [String: Any])?["role"] as? String) != nil })
        else {
            throw OmniRunError(.invalidArgument, "messages must be a non-empty array of {role, content} objects")
        }
        try LLMRequest.requirePositive(object, "max_tokens")
    }

    /// The proxy always asks for the stream's usage (and, for upstreams that report it, the cost).
    static func prepareUpstream(_ body: inout [String: Any], stream: Bool, requestCost: Bool) {
        if stream {
            var options = body["stream_options"] as? [String: Any] ?? [:]
            options["include_usage"] = true
            body["stream_options"] = options
        }
        if requestCost { body["usage"] = ["include": true] }
    }

    static func usage(ofAnswer object: [String: Any]) -> LLMUsage? {
        guard let usage = object["usage"] as? [String: Any] else { return nil }
        return LLMUsage(
            promptTokens: LLMUsage.tokens(usage["prompt_tokens"]), completionTokens: LLMUsage.tokens(usage["completion_tokens"]),
            cost: LLMUsage.cost(usage))
    }

    static func characters(ofAnswer object: [String: Any]) -> Int {
        (object["choices"] as? [[String: Any]] ?? []).reduce(0) {
            $0 + ((($1["message"] as? [String: Any])?["content"] as? String)?.count ?? 0)
        }
    }

    /// The usage chunk the proxy asked for is dropped unless the client asked for it too.
    static func note(_ event: [String: Any], in scan: inout LLMStreamScan) -> Bool {
        let choices = event["choices"] as? [[String: Any]] ?? []
        for choice in choices {
            if let content = (choice["delta"] as? [String: Any])?["content"] as? String { scan.contentCharacters += content.count }
        }
        if let usage = usage(ofAnswer: event) {
            scan.usage = usage
            if !scan.clientWantsUsage, choices.isEmpty { return false }
        }
        return true
    }

    static func failureEvent(code: String, message: String, after scan: LLMStreamScan) -> [UInt8] {
        SSEFrame.event(nil, ["error": ["message": message, "type": code]])
    }
}
