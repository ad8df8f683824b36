import OmniRunError
import SandboxRuntime

/// What the build machines of `RUN` and `ADD <url>` steps may reach (`OMNIRUN_BUILD_EGRESS`).
/// They get their network the way `internet: true` sandboxes do (a namespace of their own,
/// NAT, the host's firewall), so whatever the host refuses to sandboxes it refuses to builds
/// too; this narrows it further.
public enum BuildEgress: Sendable, Equatable {
    /// Everything a sandbox with internet access reaches (the default).
    case open
    /// Only these host names (`*.example.com` for subdomains) and IPv4 addresses or CIDRs,
    /// e.g. the operator's package mirrors; an empty list refuses everything (`none`).
    case allowList(EgressPolicy)
    /// No network card at all: steps that download fail.
    case off

    /// `open`, `off`, `none`, or a comma-separated allow-list of names and addresses.
    public static func parse(_ text: String) throws -> BuildEgress {
        let value = text.trimmingCharacters(in: .whitespaces)
        switch value.lowercased() {
        case "", "open": return .open
        case "off": return .off
        case "none": return .allowList(Self.policy(names: [], addresses: []))
        default:
            var names: [String] = []
            var addresses: [String] = []
            for entry in value.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
                if entry.allSatisfy({ $0.isNumber || $0 == "." || $0 == "/" }) { addresses.append(entry) } else { names.append(entry) }
            }
            do {
                return .allowList(try Self.policy(names: names, addresses: addresses).validated())
            } catch let error as OmniRunError {
                throw OmniRunError(.invalidArgument, "OMNIRUN_BUILD_EGRESS: \(error.message)")
            }
        }
    }

    private static func policy(names: [String], addresses: [String]) -> EgressPolicy {
        var policy = EgressPolicy(allowDomains: names.isEmpty ? nil : names, allowIPs: addresses.isEmpty ? nil : addresses)
        policy.defaultDeny = true
        return policy
    }

    /// The policy a build machine's network gets (nil: no network card).
    var policy: EgressPolicy? {
        switch self {
        case .open: EgressPolicy()
        case .allowList(let policy): policy
        case .off: nil
        }
    }

    /// For the build log and errors.
    public var summary: String {
        switch self {
        case .open: return "open (what sandboxes with internet access reach)"
        case .off: return "off (no network card)"
        case .allowList(let policy):
            let entries = (policy.allowDomains ?? []) + (policy.allowIPs ?? [])
            return entries.isEmpty ? "none (every connection is refused)" : "only \(entries.joined(separator: ", "))"
        }
    }
}
