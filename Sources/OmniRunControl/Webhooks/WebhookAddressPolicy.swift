import Foundation
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Where webhooks may not go: anything that is not the public internet — loopback,
/// link-local (the metadata service), private networks (RFC 1918, CGNAT, IPv6 unique
/// local), unspecified, multicast and reserved addresses — unless the operator allows
/// it: `OMNIRUN_WEBHOOK_ALLOW_LOOPBACK=1` (loopback and link-local) and
/// `OMNIRUN_WEBHOOK_ALLOW_PRIVATE=cidr,…` (chosen ranges, IPv4 or IPv6; e.g. a receiver
/// on the LAN). A literal address is checked when the webhook is created; a name is
/// resolved once per delivery, every address it gave is checked, and the connection
/// goes to the address that passed (no second lookup, so no DNS rebinding).
package struct WebhookAddressPolicy: Sendable {
    package var allowLoopback: Bool
    /// Ranges the operator allows although they are private.
    package var allowedPrivate: [AddressRange]
    /// Resolves a name to its addresses (4 or 16 bytes each); getaddrinfo unless a test says otherwise.
    package var resolver: @Sendable (String) async throws -> [[UInt8]]

    package init(
        allowLoopback: Bool, allowedPrivate: [AddressRange] = [],
        resolver: @escaping @Sendable (String) async throws -> [[UInt8]] = { host in
            try await Task.detached { try WebhookAddressPolicy.systemResolve(host) }.value
        }
    ) {
        self.allowLoopback = allowLoopback
        self.allowedPrivate = allowedPrivate
        self.resolver = resolver
    }

    /// Parses `OMNIRUN_WEBHOOK_ALLOW_PRIVATE` (comma-separated CIDRs or addresses).
    package static func ranges(_ setting: String) throws -> [AddressRange] {
        try setting.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { entry in
            guard let range = AddressRange(entry) else {
                throw OmniRunError(.invalidArgument, "OMNIRUN_WEBHOOK_ALLOW_PRIVATE: '\(entry)' is not an address or CIDR")
            }
            return range
        }
    }

    /// Refuses a literal address (or `localhost`) at once; names are resolved at delivery.
    package func check(host: String) throws {
        let bare = Self.bare(host)
        if bare.lowercased() == "localhost" || bare.lowercased().hasSuffix(".localhost") {
            guard allowLoopback else { throw refused(host) }
            return
        }
        if let bytes = Self.parse(bare), !allows(bytes) { throw refused(host) }
    }

    /// Resolves `host` once and returns the address to connect to (its text form), or
    /// refuses it when any of its addresses may not be reached.
    package func resolveChecked(host: String) async throws -> String {
        let bare = Self.bare(host)
        try check(host: host)
        let addresses: [[UInt8]]
        if let literal = Self.parse(bare) {
            addresses = [literal]
        } else {
            do {
                addresses = try await resolver(bare)
            } catch {
                throw WebhookError("the receiver's name did not resolve")
            }
        }
        guard let first = addresses.first else { throw WebhookError("the receiver's name did not resolve") }
        guard addresses.allSatisfy(allows) else { throw refused(host) }
        return Self.format(first)
    }

    package func allows(_ bytes: [UInt8]) -> Bool {
        guard let kind = Self.classify(bytes) else { return true }
        if allowLoopback, kind == .loopback || kind == .linkLocal { return true }
        return allowedPrivate.contains { $0.contains(bytes) }
    }

    private func refused(_ host: String) -> OmniRunError {
        OmniRunError(
            .invalidArgument,
            "webhooks may not be delivered to \(host): loopback, link-local and private addresses are refused (OMNIRUN_WEBHOOK_ALLOW_LOOPBACK=1 and OMNIRUN_WEBHOOK_ALLOW_PRIVATE=<cidrs> allow them)")
    }

    package enum Kind { case loopback, linkLocal, `private`, special }

    /// Why an address is not the public internet (nil: it is).
    package static func classify(_ bytes: [UInt8]) -> Kind? {
        if bytes.count == 4 {
            let (a, b) = (bytes[0], bytes[1])
            if a == 127 { return .loopback }
            if a == 169 && b == 254 { return .linkLocal }
            if a == 10 || (a == 172 && b & 0xf0 == 16) || (a == 192 && b == 168) || (a == 100 && b & 0xc0 == 64) { return .private }
            if a == 0 || a >= 224 || (a == 192 && b == 0 && bytes[2] == 0) { return .special }
            return nil
        }
        guard bytes.count == 16 else { return .special }
        // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) addresses are judged as IPv4.
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff { return classify(Array(bytes[12...])) }
        if bytes[0..<12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] { return classify(Array(bytes[12...])) }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) { return bytes[15] == 1 ? .loopback : .special }  // ::1 and ::
        if bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 { return .linkLocal }  // fe80::/10
        if bytes[0] & 0xfe == 0xfc { return .private }  // fc00::/7
        if bytes[0] == 0xff { return .special }  // multicast
        return nil
    }

    package static func bare(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// 4 or 16 bytes, for an IPv4 or IPv6 literal.
    package static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    package static func format(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    package static func systemResolve(_ host: String) throws -> [[UInt8]] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &result)
        guard rc == 0, let first = result else {
            throw OmniRunError(.unavailable, "cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(first) }
        var addresses: [[UInt8]] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let address = entry.pointee.ai_addr {
                if entry.pointee.ai_family == AF_INET {
                    var v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    addresses.append(withUnsafeBytes(of: &v4) { Array($0) })
                } else if entry.pointee.ai_family == AF_INET6 {
                    var v6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    addresses.append(withUnsafeBytes(of: &v6) { Array($0) })
                }
            }
            cursor = entry.pointee.ai_next
        }
        return addresses
    }
}

/// An IPv4 or IPv6 network (`10.20.0.0/16`, `fd00::/8`, or one address).
package struct AddressRange: Sendable, Equatable {
    package var network: [UInt8]
    package var prefix: Int

    package init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = WebhookAddressPolicy.parse(String(parts[0])) else { return nil }
        let bits = address.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard parts[1].allSatisfy(\.isASCII), let value = Int(parts[1]), (0...bits).contains(value) else { return nil }
            prefix = value
        }
        self.network = address
        self.prefix = prefix
    }

    package func contains(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == network.count else { return false }
        var remaining = prefix
        for index in 0..<bytes.count where remaining > 0 {
            let take = min(remaining, 8)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - take))
            if bytes[index] & mask != network[index] & mask { return false }
            remaining -= take
        }
        return true
    }
}
