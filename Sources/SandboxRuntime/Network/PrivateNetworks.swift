import Foundation
import OmniRunError

/// The networks no sandbox reaches unless the operator allows them
/// (`OMNIRUN_EGRESS_ALLOW_PRIVATE`): what is not the public internet — this host's LAN,
/// the cloud's metadata service, the host itself, the sandboxes' own links. Every machine
/// with a network device is held to it, in its namespace's firewall, in the host's table
/// and in the domain proxy's choice of address alike. A tenant's policy cannot open them
/// (their allow-lists apply only to what is left).
public struct PrivateNetworks: Sendable, Equatable {
    /// Refused by default (IPv4; sandboxes have no IPv6 at all).
    public static let refused: [String] = [
        "0.0.0.0/8",  // "this network"
        "10.0.0.0/8",  // RFC 1918 (and the sandboxes' veth links, 10.203.0.0/16)
        "100.64.0.0/10",  // carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  // loopback
        "169.254.0.0/16",  // link-local, the metadata service 169.254.169.254
        "172.16.0.0/12",  // RFC 1918
        "192.0.0.0/24",  // IETF protocol assignments
        "192.168.0.0/16",  // RFC 1918
        "224.0.0.0/4",  // multicast
        "240.0.0.0/4",  // reserved, and the broadcast address
    ]

    /// Ranges inside `refused` the operator lets sandboxes reach (normalised CIDRs).
    public var allowed: [String]

    /// Every private network refused.
    public static let none = PrivateNetworks(normalised: [])

    private init(normalised: [String]) {
        allowed = normalised
    }

    /// Checks and normalises the operator's list (`10.20.0.0/16,192.168.5.7`).
    public init(allowing allowed: [String] = []) throws {
        self.allowed = try allowed.map { try EgressPolicy.cidr($0, field: "OMNIRUN_EGRESS_ALLOW_PRIVATE") }
    }

    /// Parses `OMNIRUN_EGRESS_ALLOW_PRIVATE` (comma-separated; empty: none).
    public init(setting: String) throws {
        try self.init(allowing: setting.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    /// Whether a sandbox may not reach `address`.
    public func refuses(_ address: String) -> Bool {
        guard let value = IPv4.parse(address) else { return true }
        return refuses(value)
    }

    func refuses(_ value: UInt32) -> Bool {
        guard Self.refused.contains(where: { Self.contains($0, value) }) else { return false }
        return !allowed.contains { Self.contains($0, value) }
    }

    /// Whether the CIDR `range` (`a.b.c.d/n`) holds `value`.
    static func contains(_ range: String, _ value: UInt32) -> Bool {
        let parts = range.split(separator: "/")
        guard parts.count == 2, let network = IPv4.parse(String(parts[0])), let prefix = Int(parts[1]), (0...32).contains(prefix)
        else { return false }
        let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
        return value & mask == network & mask
    }

    /// The firewall rules (for an nftables chain, each to be prefixed by the caller's
    /// match) that refuse these networks: the operator's exceptions first (`exception`,
    /// e.g. `accept` or `goto tenant`), then a refusal per range (a TCP reset, else
    /// ICMP unreachable).
    func rules(exception: String) -> [String] {
        allowed.map { "ip daddr \($0) \(exception)" }
            + Self.refused.flatMap { ["ip daddr \($0) meta l4proto tcp reject with tcp reset", "ip daddr \($0) reject"] }
    }
}
