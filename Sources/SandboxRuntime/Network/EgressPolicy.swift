import Foundation
import OmniRunError

/// What a sandbox with internet access may reach (wire protocol §9.3). An allow-list
/// (of addresses or names) means everything else is refused; a deny-list refuses what
/// it names. Names are enforced by their resolved IPv4 addresses.
public struct EgressPolicy: Sendable, Codable, Equatable {
    public var allowDomains: [String]?
    public var denyDomains: [String]?
    public var allowIPs: [String]?
    public var denyIPs: [String]?
    /// Refuse whatever no allow-list names, even when the lists are empty (`sniProxy: true`).
    public var defaultDeny: Bool?

    public init(allowDomains: [String]? = nil, denyDomains: [String]? = nil, allowIPs: [String]? = nil, denyIPs: [String]? = nil) {
        self.allowDomains = allowDomains
        self.denyDomains = denyDomains
        self.allowIPs = allowIPs
        self.denyIPs = denyIPs
    }

    /// Whether an allow-list is set (then anything not on it is refused).
    public var isAllowList: Bool { defaultDeny == true || !(allowIPs ?? []).isEmpty || !(allowDomains ?? []).isEmpty }

    /// Whether the policy names domains (then ports 443 and 80 go through the proxy).
    public var namesDomains: Bool { defaultDeny == true || !(allowDomains ?? []).isEmpty || !(denyDomains ?? []).isEmpty }

    /// The lists' sizes are bounded and every entry checked, so that a bad policy is a
    /// clear 400 and never reaches the firewall.
    public func validated() throws -> EgressPolicy {
        var policy = self
        for (field, list) in [("allowIPs", allowIPs), ("denyIPs", denyIPs), ("allowDomains", allowDomains), ("denyDomains", denyDomains)] {
            guard (list?.count ?? 0) <= 256 else {
                throw OmniRunError(.invalidArgument, "\(field) is limited to 256 entries")
            }
        }
        policy.allowIPs = try allowIPs?.map { try Self.cidr($0, field: "allowIPs") }
        policy.denyIPs = try denyIPs?.map { try Self.cidr($0, field: "denyIPs") }
        policy.allowDomains = try allowDomains?.map { try Self.domain($0, field: "allowDomains") }
        policy.denyDomains = try denyDomains?.map { try Self.domain($0, field: "denyDomains") }
        return policy
    }

    /// A plain IPv4 address (settings), or an error.
    public static func validatedIPv4(_ text: String) throws -> String {
        guard let address = IPv4.parse(text) else { throw OmniRunError(.invalidArgument, "'\(text)' is not an IPv4 address") }
        return IPv4.format(address)
    }

    /// An IPv4 address or CIDR, normalised (`10.1.2.3` → `10.1.2.3/32`, host bits cleared).
    static func cidr(_ text: String, field: String) throws -> String {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPv4.parse(String(parts[0])) else {
            if text.contains(":") {
                throw OmniRunError(.invalidArgument, "\(field): '\(text)' is IPv6; sandboxes have IPv4 only (IPv6 is always refused)")
            }
            throw OmniRunError(.invalidArgument, "\(field): '\(text)' is not an IPv4 address or CIDR")
        }
        var prefix = 32
        if parts.count == 2 {
            guard let bits = Int(parts[1]), (0...32).contains(bits), parts[1].allSatisfy(\.isASCII) else {
                throw OmniRunError(.invalidArgument, "\(field): '\(text)' has an invalid prefix length")
            }
            prefix = bits
        }
        let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
        return "\(IPv4.format(address & mask))/\(prefix)"
    }

    /// A host name (`example.com`, or `*.example.com` for its subdomains), lowercased.
    static func domain(_ text: String, field: String) throws -> String {
        let name = text.lowercased()
        let bare = name.hasPrefix("*.") ? String(name.dropFirst(2)) : name
        let labels = bare.split(separator: ".", omittingEmptySubsequences: false)
        let valid =
            !bare.isEmpty && bare.utf8.count <= 253
            && labels.allSatisfy { label in
                !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                    && label.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }
            }
        guard valid else { throw OmniRunError(.invalidArgument, "\(field): '\(text)' is not a host name") }
        return name
    }
}

/// IPv4 addresses as 32-bit numbers.
enum IPv4 {
    static func parse(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var value: UInt32 = 0
        for octet in octets {
            guard !octet.isEmpty, octet.count <= 3, octet.allSatisfy({ $0.isASCII && $0.isNumber }), let byte = UInt32(octet),
                byte <= 255
            else { return nil }
            value = value << 8 | byte
        }
        return value
    }

    static func format(_ value: UInt32) -> String {
        "\(value >> 24).\(value >> 16 & 255).\(value >> 8 & 255).\(value & 255)"
    }
}
