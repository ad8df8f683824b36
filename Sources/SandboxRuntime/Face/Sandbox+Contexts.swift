import AgentClient
import AgentProtocol

/// Code contexts: the guest's contexts service (one kernel per context).
extension Sandbox {
    /// A request answered by one event (`create`, `list`, `restart`, `delete`).
    public func contextRequest(_ request: ContextRequest, timeout: Duration = .seconds(240)) async throws -> ContextEvent {
        try await agent.contextRequest(request, timeout: timeout)
    }

    /// Sends a request (an `execute`) and delivers its answer's events in order; a
    /// `failure` event is thrown as an `OmniRunError` with its status's code.
    public func contextEvents(
        _ request: ContextRequest, timeout: Duration? = nil, onEvent: @escaping @Sendable (ContextEvent) async throws -> Void
    ) async throws {
        try await agent.contexts(request, timeout: timeout, onEvent: onEvent)
    }
}
