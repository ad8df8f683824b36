import AgentProtocol

extension GuestAgentClient {
    /// The guest's CPU ticks, memory and root file system, as the guest sees them.
    public func metrics(timeout: Duration = .seconds(10)) async throws -> GuestMetrics {
        try await json(.GET, AgentAPI.Path.metrics, timeout: timeout)
    }

    /// Sets the guest's wall clock (nanoseconds since 1970).
    public func setClock(unixTimeNanos: Int64) async throws {
        let _: EmptyReply = try await json(.POST, AgentAPI.Path.clock, body: ClockRequest(unixTimeNanos: unixTimeNanos))
    }
}
