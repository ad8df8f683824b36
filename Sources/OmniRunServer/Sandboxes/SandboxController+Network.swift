import Foundation
import Hummingbird
import OmniRunCore
import OmniRunError
import SandboxRuntime

/// `network` at create and `POST /sandboxes/{id}/network-policy` (wire protocol §9.3).
struct NetworkPolicyBody: Codable {
    var allowDomains: [String]?
    var denyDomains: [String]?
    var allowIPs: [String]?
    var denyIPs: [String]?

    var policy: EgressPolicy {
        EgressPolicy(allowDomains: allowDomains, denyDomains: denyDomains, allowIPs: allowIPs, denyIPs: denyIPs)
    }
}

extension SandboxController {
    /// Whether a create asks for internet access, and with which egress policy. Internet
    /// access is off unless asked for: `internet: true`, or an allow-list (`network`
    /// with `allowIPs`/`allowDomains`, or `sniProxy`/`allowDomains` as the docs' agent
    /// example sends them), which implies access restricted to it; `sniProxy: true` alone
    /// refuses every host. A policy that only denies narrows an access that is off by
    /// default: without `internet: true` the sandbox stays air-gapped.
    func networkRequest(_ body: CreateBody) throws -> (internet: Bool, egress: EgressPolicy?) {
        var egress = body.network?.policy
        if body.sniProxy == true || body.allowDomains != nil {
            var policy = egress ?? EgressPolicy()
            policy.allowDomains = (policy.allowDomains ?? []) + (body.allowDomains ?? [])
            if body.sniProxy == true { policy.defaultDeny = true }
            egress = policy
        }
        egress = try egress?.validated()
        let allows = egress?.isAllowList == true
        if allows, body.internet == false {
            throw OmniRunError(.invalidArgument, "an allow-list needs internet access (leave out internet: false)")
        }
        let internet = body.internet == true || allows
        return internet ? (true, egress) : (false, nil)
    }

    /// Replaces a running sandbox's egress policy; new connections follow it at once.
    @Sendable func setNetworkPolicy(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let id = try context.parameters.require("id")
        let body = try await JSON.decode(NetworkPolicyBody.self, from: request, limit: 256 << 10)
        try await creation.setNetworkPolicy(id, policy: body.policy, account: account)
        return JSON.response(["status": "ok"])
    }
}
