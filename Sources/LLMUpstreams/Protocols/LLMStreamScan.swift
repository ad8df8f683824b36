import Foundation
import OmniRunError

/// What the proxy learns from a stream as it passes: the usage and how much text came.
public struct LLMStreamScan: Sendable {
    public let wire: LLMProtocol
    /// Chat completions only: whether the client itself asked for the final usage chunk.
    public let clientWantsUsage: Bool
    public var usage: LLMUsage?
    public var contentCharacters = 0
    /// Responses: the id of the response being streamed, and the last event's sequence number
    /// (a failure event continues them).
    var responseID: String?
    var sequenceNumber: Int?

    public init(wire: LLMProtocol, clientWantsUsage: Bool = true) {
        self.wire = wire
        self.clientWantsUsage = clientWantsUsage
    }

    /// Notes what the event says; false for an event the client should not get.
    public mutating func keep(_ event: [UInt8]) -> Bool {
        guard let data = SSEEventSplitter.data(of: event), data != "[DONE]",
            let object = (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any]
        else { return true }
        return wire.wire.note(object, in: &self)
    }

    /// The failure event of this stream's protocol.
    public func failureEvent(_ error: OmniRunError) -> [UInt8] {
        wire.wire.failureEvent(code: error.code.rawValue, message: error.message, after: self)
    }
}
