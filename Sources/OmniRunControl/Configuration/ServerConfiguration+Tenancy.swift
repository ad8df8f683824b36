import OmniRunError

/// What one account may keep on a node's disk besides its running sandboxes.
public struct QuotaSettings: Sendable {
    /// `OMNIRUN_PAUSED_LIMIT`: paused sandboxes per account (default 10; 429 beyond).
    public var pausedPerAccount = 10
    /// `OMNIRUN_PAUSED_RETENTION`: seconds a sandbox may stay paused before it is deleted
    /// (default 30 days; a `timeout` webhook event with reason `retention`).
    public var pausedRetentionSeconds: Int64 = 30 * 86400
    /// `OMNIRUN_BUILD_QUEUE_LIMIT`: template builds per account that are uploading, waiting
    /// for their turn or running (default 2; 429 beyond).
    public var buildsPerAccount = 2
    /// `OMNIRUN_BUILD_QUEUE_BYTES`: bytes of build contexts (the tars of `POST /templates`) an
    /// account's uploading, waiting and running builds may hold together (default 1 GiB).
    public var buildContextBytesPerAccount = 1 << 30

    public init() {}
}

extension ServerConfiguration {
    /// Sign-up, trusted proxies and per-account quotas from the environment (each variable
    /// is documented on its field). A value that does not parse stops the start.
    package mutating func applyTenancyEnvironment(_ env: [String: String]) throws {
        if let text = env["OMNIRUN_SIGNUP"], !text.isEmpty { signIn.signUp = try SignUpPolicy.parse(text) }
        if let text = env["OMNIRUN_TRUSTED_PROXIES"], !text.isEmpty { trustedProxies = try TrustedProxies.parse(text) }
        quotas.pausedPerAccount = try Self.integer(env, "OMNIRUN_PAUSED_LIMIT", 0...100_000) ?? quotas.pausedPerAccount
        quotas.pausedRetentionSeconds =
            try Self.integer(env, "OMNIRUN_PAUSED_RETENTION", 1...(100 * 365 * 86400)).map(Int64.init) ?? quotas.pausedRetentionSeconds
        quotas.buildsPerAccount = try Self.integer(env, "OMNIRUN_BUILD_QUEUE_LIMIT", 1...1000) ?? quotas.buildsPerAccount
        quotas.buildContextBytesPerAccount =
            try Self.integer(env, "OMNIRUN_BUILD_QUEUE_BYTES", 1...(1 << 50)) ?? quotas.buildContextBytesPerAccount
    }

    package static func integer(_ env: [String: String], _ name: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let text = env[name], !text.isEmpty else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw OmniRunError(.invalidArgument, "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }
}
