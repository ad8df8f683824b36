import AgentClient
import AgentProtocol
import Foundation
import OmniRunCore

/// What to create.
public struct SandboxSpec: Sendable {
    public var template: String
    public var id: SandboxID?
    /// Environment for every process in the sandbox.
    public var env: [String: String]
    public var defaultUser: String
    /// Written to `envFilePath` as `export` lines and added to every process's environment.
    public var envFileVars: [String: String]?
    public var envFilePath: String
    /// Skip the snapshot and boot from scratch.
    public var coldBoot: Bool
    /// A network card and a route out (`HostNetwork`); without it, no card at all.
    public var internet: Bool
    /// The egress policy of a sandbox with internet access.
    public var egress: EgressPolicy?
    /// The screen of a desktop sandbox, when not the snapshot's (`RESOLUTION`).
    public var screenSize: ScreenSize?

    public init(
        template: String, id: SandboxID? = nil, env: [String: String] = [:], defaultUser: String = "user",
        envFileVars: [String: String]? = nil, envFilePath: String = "/tmp/.omnirun-env", coldBoot: Bool = false,
        internet: Bool = false, egress: EgressPolicy? = nil, screenSize: ScreenSize? = nil
    ) {
        self.screenSize = screenSize
        self.internet = internet
        self.egress = egress
        self.template = template
        self.id = id
        self.env = env
        self.defaultUser = defaultUser
        self.envFileVars = envFileVars
        self.envFilePath = envFilePath
        self.coldBoot = coldBoot
    }
}

/// A running sandbox: its machine and the client of its agent. Only the runtime talks to
/// the agent; everyone else uses the sandbox's methods (`Face/`).
public final class Sandbox: Sendable {
    public let id: SandboxID
    public let template: String
    public let machine: any MachineInstance
    let agent: GuestAgentClient
    public let createdAt: Date

    init(id: SandboxID, template: String, machine: any MachineInstance, agent: GuestAgentClient) {
        self.id = id
        self.template = template
        self.machine = machine
        self.agent = agent
        self.createdAt = Date()
    }

    /// The agent's health; a call on a pooled machine waits for its identity first.
    public func health(timeout: Duration = GuestAgentClient.defaultTimeout) async throws -> HealthResponse {
        try await agent.health(timeout: timeout)
    }

    /// Runs a shell command to its end (as `exec` does).
    public func run(_ shell: String, user: String? = nil, timeoutMillis: Int64? = nil) async throws -> ProcessResult {
        try await exec(ProcessStartRequest(shell: shell, user: user, timeoutMillis: timeoutMillis))
    }
}
