import Foundation
import OmniRunError

/// A request to the proxy as the client sent it, in one of the protocols: checked for the
/// fields the proxy relies on, everything else passed upstream untouched.
public struct LLMRequest: @unchecked Sendable {
    public let wire: LLMProtocol
    /// The decoded JSON object (only read and copied, never shared mutably).
    let object: [String: Any]
    public let model: String
    public let stream: Bool
    /// Chat completions: whether the client itself asked for the final usage chunk of a stream.
    public let clientWantsStreamUsage: Bool
    /// The request's size, for a rough token estimate when an upstream reports none.
    public let byteCount: Int

    /// Checks `data` as a request of `wire` (`countTokens`: Anthropic's token count, no output).
    public static func parse(_ data: Data, wire: LLMProtocol, countTokens: Bool = false) throws -> LLMRequest {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw OmniRunError(.invalidArgument, "the body must be a JSON object (an \(wire) request)")
        }
        guard let model = object["model"] as? String, !model.isEmpty, model.count <= 256 else {
            throw OmniRunError(.invalidArgument, "model is required: a model id such as \"openai/gpt-4o-mini\"")
        }
        var stream = false
        if let value = object["stream"], !(value is NSNull) {
            guard let flag = value as? Bool, !countTokens || !flag else {
                throw OmniRunError(.invalidArgument, countTokens ? "a token count is not streamed" : "stream must be true or false")
            }
            stream = flag
        }
        if countTokens {
            try MessagesWire.validateMessages(object)
        } else {
            try wire.wire.validate(object)
        }
        let options = object["stream_options"] as? [String: Any]
        return LLMRequest(
            wire: wire, object: object, model: model, stream: stream,
            clientWantsStreamUsage: wire != .chatCompletions || (options?["include_usage"] as? Bool) == true,
            byteCount: data.count)
    }

    /// The body to send upstream: the upstream's model id, and usage reporting asked for.
    public func upstreamBody(model upstreamModel: String, requestCost: Bool) throws -> Data {
        var body = object
        body["model"] = upstreamModel
        wire.wire.prepareUpstream(&body, stream: stream, requestCost: requestCost)
        return try JSONSerialization.data(withJSONObject: body, options: [.withoutEscapingSlashes])
    }

    /// The usage a whole answer reports, and how much text it holds.
    public func answer(_ object: [String: Any]) -> (usage: LLMUsage?, characters: Int) {
        (wire.wire.usage(ofAnswer: object), wire.wire.characters(ofAnswer: object))
    }

    /// A positive whole number (`max_tokens`, `max_output_tokens`), if present.
    static func requirePositive(_ object: [String: Any], _ key: String, required: Bool = false) throws {
        guard let value = object[key], !(value is NSNull) else {
            if required { throw OmniRunError(.invalidArgument, "\(key) is required: a positive integer") }
            return
        }
        guard let number = value as? NSNumber, number.doubleValue >= 1,
            number.doubleValue.rounded() == number.doubleValue
        else {
            throw OmniRunError(.invalidArgument, "\(key) must be a positive integer")
        }
    }
}
