import Foundation
import OmniRunError

/// OpenAI Responses: `input` (a text or a list of items: messages, function calls and their
/// outputs, …) in, `output` items out. A stream is named events (`response.created`,
/// `response.output_item.added`, `response.output_text.delta`, …) ending with
/// `response.completed` (or `.incomplete`/`.failed`), whose response carries the usage.
enum ResponsesWire: LLMWire {
    static func validate(_ object: [String: Any]) throws {
        guard object["input"] is String || object["input"] is [Any] else {
            throw OmniRunError(.invalidArgument, "input is required: a text or an array of input items")
        }
        try LLMRequest.requirePositive(object, "max_output_tokens")
    }

    static func prepareUpstream(_ body: inout [String: Any], stream: Bool, requestCost: Bool) {}

    static func usage(ofAnswer object: [String: Any]) -> LLMUsage? {
        guard let usage = object["usage"] as? [String: Any] else { return nil }
        return LLMUsage(
            promptTokens: LLMUsage.tokens(usage["input_tokens"]), completionTokens: LLMUsage.tokens(usage["output_tokens"]),
            cost: LLMUsage.cost(usage))
    }

    static func characters(ofAnswer object: [String: Any]) -> Int {
        (object["output"] as? [[String: Any]] ?? []).reduce(0) { total, item in
            let texts = (item["content"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
            return total + texts.reduce(0) { $0 + $1.count } + ((item["arguments"] as? String)?.count ?? 0)
        }
    }

    static let finalEvents: Set<String> = ["response.completed", "response.incomplete", "response.failed"]

    static func note(_ event: [String: Any], in scan: inout LLMStreamScan) -> Bool {
        let type = event["type"] as? String ?? ""
        if let id = (event["response"] as? [String: Any])?["id"] as? String, id.utf8.count <= 256 { scan.responseID = id }
        if let number = event["sequence_number"] as? NSNumber, let sequence = Int(exactly: number.doubleValue) { scan.sequenceNumber = sequence }
        if finalEvents.contains(type), let response = event["response"] as? [String: Any], let usage = usage(ofAnswer: response) {
            scan.usage = usage
        } else if type == "response.output_text.delta" || type == "response.function_call_arguments.delta",
            let delta = event["delta"] as? String
        {
            scan.contentCharacters += delta.count
        }
        return true
    }

    /// `response.failed` of the response being streamed, as an upstream would end one that broke off.
    static func failureEvent(code: String, message: String, after scan: LLMStreamScan) -> [UInt8] {
        let response: [String: Any] = [
            "id": scan.responseID ?? "resp_failed", "object": "response", "status": "failed", "output": [] as [Any],
            "error": ["code": code, "message": message],
        ]
        var event: [String: Any] = ["type": "response.failed", "response": response]
        if let sequence = scan.sequenceNumber, sequence < Int.max { event["sequence_number"] = sequence + 1 }
        return SSEFrame.event("response.failed", event)
    }
}
