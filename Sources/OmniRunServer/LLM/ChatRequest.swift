import Foundation
import NIOCore
import OmniRunError

/// A chat completion request as the client sent it: checked for the fields the proxy
/// relies on, everything else passed upstream untouched.
struct ChatRequest: @unchecked Sendable {
    /// The decoded JSON object (only read and copied, never shared mutably).
    let object: [String: Any]
    let model: String
    let stream: Bool
    /// Whether the client itself asked for the final usage chunk of a stream.
    let clientWantsStreamUsage: Bool
    /// The request's size, for a rough token estimate when an upstream reports none.
    let byteCount: Int

    static func parse(_ data: Data) throws -> ChatRequest {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw OmniRunError(.invalidArgument, "the body must be a JSON object (an OpenAI chat completion request)")
        }
        guard let model = object["model"] as? String, !model.isEmpty, model.count <= 256 else {
            throw OmniRunError(.invalidArgument, "model is required: a model id such as \"openai/gpt-4o-mini\"")
        }
        guard let messages = object["messages"] as? [Any], !messages.isEmpty,
            messages.allSatisfy({ (($0 as? [String: Any])?["role"] as? String) != nil })
        else {
            throw OmniRunError(.invalidArgument, "messages must be a non-empty array of {role, content} objects")
        }
        var stream = false
        if let value = object["stream"], !(value is NSNull) {
            guard let flag = value as? Bool else { throw OmniRunError(.invalidArgument, "stream must be true or false") }
            stream = flag
        }
        if let maxTokens = object["max_tokens"], !(maxTokens is NSNull) {
            guard let number = maxTokens as? NSNumber, number.doubleValue >= 1 else {
                throw OmniRunError(.invalidArgument, "max_tokens must be a positive integer")
            }
        }
        let options = object["stream_options"] as? [String: Any]
        return ChatRequest(
            object: object, model: model, stream: stream,
            clientWantsStreamUsage: (options?["include_usage"] as? Bool) == true, byteCount: data.count)
    }

    /// The body to send upstream: the upstream's model id, and usage reporting asked for.
    func upstreamBody(model upstreamModel: String, requestCost: Bool) throws -> ByteBuffer {
        var body = object
        body["model"] = upstreamModel
        if stream {
            var options = body["stream_options"] as? [String: Any] ?? [:]
            options["include_usage"] = true
            body["stream_options"] = options
        }
        if requestCost { body["usage"] = ["include": true] }
        let data = try JSONSerialization.data(withJSONObject: body, options: [.withoutEscapingSlashes])
        return ByteBuffer(bytes: data)
    }
}
