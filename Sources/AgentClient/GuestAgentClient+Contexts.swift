import AgentProtocol
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import OmniRunError

extension GuestAgentClient {
    /// Largest line of a context's answer (a rich result such as a large PNG is one line).
    public static let maxContextEventBytes = 32 << 20

    /// Sends one request to the guest's contexts service and delivers its answer's events
    /// in order. A `failure` event is thrown as an `OmniRunError` with its status's code.
    public func contexts(
        _ request: ContextRequest, timeout: Duration? = nil, onEvent: @escaping @Sendable (ContextEvent) async throws -> Void
    ) async throws {
        var line = try JSONEncoder().encode(request)
        line.append(UInt8(ascii: "\n"))
        let bytes = line
        try await exchange(
            .POST, ContextsAPI.path, query: [], timeout: timeout,
            writeBody: { writer in
                try await writer.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
                try await writer.write(.end(nil))
            }
        ) { head, body in
            try await self.checkStatus(head, &body)
            try await self.forEachLine(&body, limit: Self.maxContextEventBytes) { line in
                guard !line.isEmpty else { return }
                let event = try self.decode(ContextEvent.self, line)
                if event.type == "failure" { throw Self.contextFailure(event) }
                try await onEvent(event)
            }
        }
    }

    /// A request answered by one event (`create`, `list`, `restart`, `delete`).
    public func contextRequest(_ request: ContextRequest, timeout: Duration = .seconds(240)) async throws -> ContextEvent {
        let first = NIOLockedValueBox<ContextEvent?>(nil)
        try await contexts(request, timeout: timeout) { event in first.withLockedValue { if $0 == nil { $0 = event } } }
        guard let event = first.withLockedValue({ $0 }) else {
            throw OmniRunError(.agentError, "the contexts service of \(name) answered nothing to '\(request.op)'")
        }
        return event
    }

    static func contextFailure(_ event: ContextEvent) -> OmniRunError {
        let message = String((event.message ?? "the contexts service failed").prefix(4096))
        switch event.status ?? 500 {
        case 400: return OmniRunError(.invalidArgument, message)
        case 404: return OmniRunError(.notFound, message)
        case 409: return OmniRunError(.conflict, message)
        case 413: return OmniRunError(.payloadTooLarge, message)
        case 503: return OmniRunError(.unavailable, message)
        default: return OmniRunError(.agentError, message)
        }
    }
}
