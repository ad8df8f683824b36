import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// The reverse proxies whose `X-Forwarded-For` the server believes
/// (`OMNIRUN_TRUSTED_PROXIES`: addresses and CIDR ranges, IPv4 or IPv6; default none).
/// Per-address limits (sign-in mail) count the client's address: the peer's, unless the
/// peer is a trusted proxy; then the nearest `X-Forwarded-For` hop that is not one. A
/// header from any other peer is ignored, so a client cannot pick its own address.
public struct TrustedProxies: Sendable, Equatable {
    package struct Range: Sendable, Equatable {
        package var bytes: [UInt8]
        package var prefix: Int

        package func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var left = prefix
            for index in bytes.indices where left > 0 {
                let bits = min(8, left)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if address[index] & mask != bytes[index] & mask { return false }
                left -= bits
            }
            return true
        }
    }

    package var ranges: [Range] = []

    public init() {}

    public var isEmpty: Bool { ranges.isEmpty }

    /// `10.0.0.5, 192.168.0.0/16, ::1, fd00::/8`.
    public static func parse(_ text: String) throws -> TrustedProxies {
        var proxies = TrustedProxies()
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "/", maxSplits: 1).map(String.init)
            guard let bytes = Self.bytes(parts[0]) else {
                throw OmniRunError(.invalidArgument, "OMNIRUN_TRUSTED_PROXIES: '\(item)' is not an IP address or CIDR range")
            }
            let width = bytes.count * 8
            let prefix = parts.count == 2 ? Int(parts[1]) : width
            guard let prefix, (0...width).contains(prefix) else {
                throw OmniRunError(.invalidArgument, "OMNIRUN_TRUSTED_PROXIES: '\(item)' has a bad prefix length")
            }
            proxies.ranges.append(Range(bytes: bytes, prefix: prefix))
        }
        return proxies
    }

    package func isTrusted(_ address: String) -> Bool {
        guard let bytes = Self.bytes(address) else { return false }
        return ranges.contains { $0.contains(bytes) }
    }

    /// The address per-address limits count for a request from `peer` that carried these
    /// `X-Forwarded-For` values (in header order).
    package func clientAddress(peer: String, forwardedFor headers: [String]) -> String {
        guard !ranges.isEmpty, isTrusted(peer) else { return peer }
        let hops = headers.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        var client = peer
        // From the nearest hop outwards: trusted proxies are skipped; the first other
        // address is the client. Anything unreadable stops the walk (the last proxy is kept).
        for hop in hops.reversed().prefix(32) {
            guard let bytes = Self.bytes(hop) else { break }
            client = Self.text(bytes)
            if !ranges.contains(where: { $0.contains(bytes) }) { break }
        }
        return client
    }

    /// The 4 or 16 bytes of an address; IPv4-mapped IPv6 addresses become IPv4.
    package static func bytes(_ text: String) -> [UInt8]? {
        guard text.utf8.count <= 64 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return Array(bytes[12...]) }
        return bytes
    }

    package static func text(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
        guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(cString: buffer)
    }
}
