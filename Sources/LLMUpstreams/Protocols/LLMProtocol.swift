import Foundation
import OmniRunError

/// A wire protocol the LLM proxy speaks, to its clients and to upstreams. The proxy
/// passes requests and answers through unchanged (but for the model id); it reads in them
/// only what it needs to route and to charge. An upstream lists the protocols it speaks.
public enum LLMProtocol: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// OpenAI chat completions: `POST /chat/completions`.
    case chatCompletions = "chat"
    /// Anthropic Messages: `POST /messages` (and `/messages/count_tokens`).
    case messages
    /// OpenAI Responses: `POST /responses`.
    case responses

    /// The path under an upstream's (and the proxy's) API root.
    public var path: String {
        switch self {
        case .chatCompletions: "/chat/completions"
        case .messages: "/messages"
        case .responses: "/responses"
        }
    }

    public var description: String {
        switch self {
        case .chatCompletions: "OpenAI chat completions"
        case .messages: "Anthropic Messages"
        case .responses: "OpenAI Responses"
        }
    }

    /// What this protocol's requests must hold and how its answers report usage.
    var wire: any LLMWire.Type {
        switch self {
        case .chatCompletions: ChatCompletionsWire.self
        case .messages: MessagesWire.self
        case .responses: ResponsesWire.self
        }
    }

    /// Reads a list such as `chat,messages` (the environment's form).
    public static func list(_ text: String) throws -> [LLMProtocol] {
        try text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map {
            guard let wire = LLMProtocol(rawValue: $0) else {
                throw OmniRunError(
                    .invalidArgument,
                    "unknown LLM protocol \"\($0)\" (known: \(LLMProtocol.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return wire
        }
    }
}

/// One protocol's rules: what a request must hold, where usage and text are in an answer
/// and in its stream's events, and how a failure is told in the middle of a stream.
protocol LLMWire {
    /// Checks the fields the proxy relies on (the rest goes upstream untouched).
    static func validate(_ object: [String: Any]) throws
    /// Adds what the proxy needs from the upstream to the body sent there.
    static func prepareUpstream(_ body: inout [String: Any], stream: Bool, requestCost: Bool)
    /// The usage of a whole (not streamed) answer.
    static func usage(ofAnswer object: [String: Any]) -> LLMUsage?
    /// How many characters of text an answer holds (to estimate tokens when no usage came).
    static func characters(ofAnswer object: [String: Any]) -> Int
    /// Notes what one stream event says; false for an event the client should not get.
    static func note(_ event: [String: Any], in scan: inout LLMStreamScan) -> Bool
    /// The event that tells a client, in this protocol, that the stream failed (after what
    /// `scan` saw of it).
    static func failureEvent(code: String, message: String, after scan: LLMStreamScan) -> [UInt8]
}
