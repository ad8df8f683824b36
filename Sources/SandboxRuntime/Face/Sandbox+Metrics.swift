import AgentClient
import AgentProtocol

extension Sandbox {
    /// What the guest says about itself (CPU ticks, memory, disk): attacker-controlled
    /// numbers, to be clamped to the machine's bounds before use.
    public func guestMetrics(timeout: Duration = .seconds(10)) async throws -> GuestMetrics {
        try await agent.metrics(timeout: timeout)
    }
}
