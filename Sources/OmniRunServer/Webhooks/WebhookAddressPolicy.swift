import Foundation
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Where webhooks may not go: the server's own loopback and link-local addresses (and
/// the unspecified and multicast ones), unless `OMNIRUN_WEBHOOK_ALLOW_LOOPBACK=1`. A
/// name is checked when the webhook is created (if it is an address) and resolved and
/// checked again before every delivery. Private networks are allowed: a self-hosted
/// server's receivers often live there.
struct WebhookAddressPolicy: Sendable {
    var allowLoopback: Bool

    /// Refuses a literal address (or `localhost`) at once; names are resolved at delivery.
    func check(host: String) throws {
        guard !allowLoopback else { return }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare.lowercased() == "localhost" || bare.lowercased().hasSuffix(".localhost") {
            throw refused(host)
        }
        if let bytes = Self.parse(bare), Self.isForbidden(bytes) { throw refused(host) }
    }

    /// Resolves `host` and refuses it if any of its addresses is forbidden.
    func checkResolved(host: String) async throws {
        guard !allowLoopback else { return }
        try check(host: host)
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let addresses = try await Task.detached { try Self.resolve(bare) }.value
        if addresses.contains(where: Self.isForbidden) { throw refused(host) }
    }

    private func refused(_ host: String) -> OmniRunError {
        OmniRunError(
            .invalidArgument,
            "webhooks may not be delivered to \(host): loopback and link-local addresses are refused (OMNIRUN_WEBHOOK_ALLOW_LOOPBACK=1 allows them)")
    }

    /// 4 or 16 bytes, for an IPv4 or IPv6 literal.
    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    static func isForbidden(_ bytes: [UInt8]) -> Bool {
        if bytes.count == 4 {
            return bytes[0] == 127 || bytes[0] == 0 || (bytes[0] == 169 && bytes[1] == 254) || bytes[0] >= 224
        }
        guard bytes.count == 16 else { return true }
        // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible addresses are judged as IPv4.
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff { return isForbidden(Array(bytes[12...])) }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) { return true }  // :: and ::1
        if bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 { return true }  // fe80::/10
        return bytes[0] == 0xff  // multicast
    }

    static func resolve(_ host: String) throws -> [[UInt8]] {
        if let literal = parse(host) { return [literal] }
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
