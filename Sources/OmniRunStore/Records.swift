import Foundation
import OmniRunError

public struct AccountRecord: Sendable, Equatable {
    public var id: String
    public var email: String
    public var role: AccountRole
    public var concurrentLimit: Int
    public var createdAt: Int64
    /// The account's LLM spend cap; nil means the server's default.
    public var spendCapCents: Int64?
    /// LLM spend so far, in millionths of a cent (exact; summed atomically).
    public var spendMicrocents: Int64

    public init(
        id: String, email: String, role: AccountRole, concurrentLimit: Int, createdAt: Int64, spendCapCents: Int64? = nil,
        spendMicrocents: Int64 = 0
    ) {
        self.id = id
        self.email = email
        self.role = role
        self.concurrentLimit = concurrentLimit
        self.createdAt = createdAt
        self.spendCapCents = spendCapCents
        self.spendMicrocents = spendMicrocents
    }
}

public struct APIKeyRecord: Sendable, Equatable {
    public var id: String
    public var accountID: String
    public var name: String
    public var prefix: String
    public var createdAt: Int64
    public var expiresAt: Int64?
    public var revokedAt: Int64?

    public init(
        id: String, accountID: String, name: String, prefix: String, createdAt: Int64, expiresAt: Int64?, revokedAt: Int64?
    ) {
        self.id = id
        self.accountID = accountID
        self.name = name
        self.prefix = prefix
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }
}

public struct SandboxRecord: Sendable, Equatable {
    public var id: String
    public var accountID: String
    public var template: String
    public var state: SandboxState
    public var createdAt: Int64
    public var endedAt: Int64?
    public var endReason: EndReason?
    public var timeoutSeconds: Int64
    public var expiresAt: Int64?
    public var lastActivityAt: Int64
    public var metadata: [String: String]
    public var env: [String: String]
    public var vaultInject: Bool
    public var cpuCount: Int
    public var memoryMB: Int
    public var machineDirectory: String?
    public var machinePID: Int32?
    public var nodeID: String?
    /// The region of its node.
    public var region: String?
    /// A timeout or idleness pauses the sandbox instead of killing it.
    public var autoPause: Bool
    public var pausedAt: Int64?
    /// Disk used by the saved state and the disk of a paused sandbox.
    public var pausedBytes: Int64?

    public init(
        id: String, accountID: String, template: String, state: SandboxState, createdAt: Int64, endedAt: Int64? = nil,
        endReason: EndReason? = nil, timeoutSeconds: Int64, expiresAt: Int64?, lastActivityAt: Int64,
        metadata: [String: String], env: [String: String], vaultInject: Bool, cpuCount: Int, memoryMB: Int,
        machineDirectory: String? = nil, machinePID: Int32? = nil, nodeID: String? = nil, autoPause: Bool = false,
        pausedAt: Int64? = nil, pausedBytes: Int64? = nil, region: String? = nil
    ) {
        self.id = id
        self.accountID = accountID
        self.template = template
        self.state = state
        self.createdAt = createdAt
        self.endedAt = endedAt
        self.endReason = endReason
        self.timeoutSeconds = timeoutSeconds
        self.expiresAt = expiresAt
        self.lastActivityAt = lastActivityAt
        self.metadata = metadata
        self.env = env
        self.vaultInject = vaultInject
        self.cpuCount = cpuCount
        self.memoryMB = memoryMB
        self.machineDirectory = machineDirectory
        self.machinePID = machinePID
        self.nodeID = nodeID
        self.region = region
        self.autoPause = autoPause
        self.pausedAt = pausedAt
        self.pausedBytes = pausedBytes
    }
}

enum JSONText {
    static func encode(_ value: [String: String]) -> String {
        let data = (try? JSONEncoder().encode(value)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ text: String?) -> [String: String] {
        guard let text, let data = text.data(using: .utf8) else { return [:] }
        return (try? JSONDecoder().decode([String: String].self, from: data)) ?? [:]
    }
}
