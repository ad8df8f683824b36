import Foundation
import Logging
import NIOPosix
import OmniRunCore
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// The firewalls of `HostNetwork`: the namespace's (DNS, NAT, the egress policy, the
/// redirection of 443/80 to the domain proxy), the host's table (sandboxes cut off from each
/// other and from the host), name resolution for policies, and the availability check.
extension HostNetwork {
    /// The namespace's firewall: DNS to the resolver, NAT out, nothing to the namespace
    /// itself, and the egress policy (rewritten whole, in one transaction, on a change).
    func applyFirewall(_ namespace: String, policy: EgressPolicy, initial: Bool) async throws {
        let resolver = configuration.resolver ?? Self.hostResolver()
        var script = ""
        if initial {
            script += """
                table inet omnirun {
                  chain prerouting { type nat hook prerouting priority dstnat; policy accept; }
                  chain postrouting { type nat hook postrouting priority srcnat; policy accept; oifname "\(Self.uplinkDevice)" masquerade; }
                  chain input { type filter hook input priority filter; policy accept; }
                  chain forward { type filter hook forward priority filter; policy accept; iifname "\(Self.tapDevice)" jump egress; }
                  chain egress { }
                  chain tenant { }
                  chain proxy { }
                }
                add rule inet omnirun prerouting jump proxy

                """
            if let resolver {
                for proto in ["udp", "tcp"] {
                    script +=
                        "add rule inet omnirun prerouting iifname \"\(Self.tapDevice)\" ip daddr \(Self.gatewayAddress) \(proto) dport 53 dnat ip to \(resolver)\n"
                }
            }
            script += "add rule inet omnirun input iifname \"\(Self.tapDevice)\" meta l4proto tcp reject with tcp reset\n"
            script += "add rule inet omnirun input iifname \"\(Self.tapDevice)\" reject\n"
        }
        // Names in the policy: ports 443 and 80 go to the proxy, which checks them.
        let (hostAddress, namespaceAddress) = try await addressesOf(namespace)
        script += "flush chain inet omnirun proxy\n"
        var egress = try await egressRules(policy, resolver: resolver)
        if policy.namesDomains, let proxy {
            for (port, target) in [(443, proxy.tlsPort), (80, proxy.httpPort)] {
                script +=
                    "add rule inet omnirun proxy iifname \"\(Self.tapDevice)\" tcp dport \(port) dnat ip to \(hostAddress):\(target)\n"
            }
            egress.insert("ip daddr \(hostAddress) tcp dport { \(proxy.tlsPort), \(proxy.httpPort) } accept", at: 1)
        }
        // A namespace made by an older server has no `tenant` chain yet (`add` is idempotent).
        script += "add chain inet omnirun tenant\nflush chain inet omnirun egress\nflush chain inet omnirun tenant\n"
        for rule in egress {
            script += "add rule inet omnirun egress \(rule)\n"
        }
        for rule in try await policyRules(policy) {
            script += "add rule inet omnirun tenant \(rule)\n"
        }
        try await NetworkCommand.run(
            [
                configuration.nsenterBinary, "--net=/run/netns/\(namespace)", "--", "/bin/sh", "-c",
                (initial ? "echo 1 > /proc/sys/net/ipv4/ip_forward && " : "") + "exec \(configuration.nftBinary) -f -",
            ], input: script)
        policies[namespaceAddress] = policy
    }

    /// What every sandbox is held to, whatever its policy: established connections, no
    /// IPv6, DNS to the resolver, then the private networks refused (the operator's
    /// exceptions go on to the policy), then the sandbox's own policy (chain `tenant`).
    func egressRules(_ policy: EgressPolicy, resolver: String?) async throws -> [String] {
        var rules = ["ct state established,related accept", "meta nfproto ipv6 reject"]
        if let resolver {
            rules += ["ip daddr \(resolver) udp dport 53 accept", "ip daddr \(resolver) tcp dport 53 accept"]
        }
        rules += configuration.privateNetworks.rules(exception: "goto tenant")
        rules.append("goto tenant")
        return rules
    }

    /// The sandbox's egress policy: deny entries, then allow entries and a final refusal
    /// for an allow-list.
    func policyRules(_ policy: EgressPolicy) async throws -> [String] {
        let refuse = ["meta l4proto tcp reject with tcp reset", "reject"]
        var rules: [String] = []
        let deniedNames = try await resolve(policy.denyDomains ?? [])
        let denied = (policy.denyIPs ?? []) + deniedNames
        for target in denied {
            rules += refuse.map { "ip daddr \(target) \($0)" }
        }
        if policy.isAllowList {
            let allowedNames = try await resolve(policy.allowDomains ?? [])
            let allowed = (policy.allowIPs ?? []) + allowedNames
            rules += allowed.map { "ip daddr \($0) accept" }
            rules += refuse
        }
        return rules
    }

    /// The IPv4 addresses of names (overrides first; wildcards have none).
    func resolve(_ names: [String]) async throws -> [String] {
        var addresses: [String] = []
        for name in names where !name.hasPrefix("*.") {
            if let fixed = configuration.nameOverrides[name] {
                addresses += fixed.map { "\($0)/32" }
                continue
            }
            let found = await Task.detached { Self.lookUp(name) }.value
            if found.isEmpty {
                logger.warning("a policy's name did not resolve", metadata: ["name": "\(name)"])
            }
            addresses += found.map { "\($0)/32" }
        }
        return Array(Set(addresses)).sorted()
    }

    static func lookUp(_ name: String) -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(name, nil, &hints, &result) == 0 else { return [] }
        defer { freeaddrinfo(result) }
        var addresses: [String] = []
        var cursor = result
        while let entry = cursor {
            if let raw = entry.pointee.ai_addr, entry.pointee.ai_family == AF_INET {
                let address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                addresses.append(IPv4.format(UInt32(bigEndian: address)))
            }
            cursor = entry.pointee.ai_next
        }
        return addresses
    }

    /// The host's table: nothing from a sandbox to the host itself (but this server's
    /// proxy) or to another sandbox; sandboxes' traffic leaves with the host's address.
    /// Made once per run. Input and private networks are judged for this server's own
    /// devices (`orn<tag>*`): each server's table lets in its own proxy's ports, so one
    /// server's table must not refuse another's sandboxes their proxy.
    func ensureHostTable() async throws {
        guard !hostTableReady else { return }
        if proxy == nil {
            proxy = try DomainProxy(group: MultiThreadedEventLoopGroup.singleton) { [weak self] peer, name in
                await self?.proxyDecision(peer: peer, name: name)
            }
        }
        let ports = proxy.map { "\($0.tlsPort), \($0.httpPort)" } ?? "1"
        let table = "omnirun_\(tag)"
        let devices = "\(Self.devicePrefix)*"
        // The private networks again, for this server's sandboxes (its own devices: other
        // servers on the host may allow other ranges), should a namespace's rules be gone.
        let mine = "iifname \"\(Self.devicePrefix)\(tag)*\" "
        let resolver = configuration.resolver ?? Self.hostResolver()
        let dns = resolver.map { ["ip daddr \($0) udp dport 53 accept", "ip daddr \($0) tcp dport 53 accept"] } ?? []
        let privateRules = (dns + configuration.privateNetworks.rules(exception: "accept"))
            .map { "    " + mine + $0 }.joined(separator: "\n")
        try await NetworkCommand.run(
            [configuration.nftBinary, "-f", "-"],
            input: """
                table inet \(table)
                delete table inet \(table)
                table inet \(table) {
                  chain input {
                    type filter hook input priority filter - 10; policy accept;
                    \(mine)ct state established,related accept
                    \(mine)tcp dport { \(ports) } accept
                    \(mine)meta l4proto tcp reject with tcp reset
                    \(mine)reject
                  }
                  chain forward {
                    type filter hook forward priority filter - 10; policy accept;
                    iifname "\(devices)" oifname "\(devices)" reject
                \(privateRules)
                  }
                  chain postrouting {
                    type nat hook postrouting priority srcnat; policy accept;
                    ip saddr \(Self.hostSubnet) oifname != "\(devices)" masquerade
                  }
                }

                """)
        hostTableReady = true
        warnAboutUplinkForwarding()
    }

    /// Removes the host's table (once no sandbox of this server is left: a test harness's exit).
    public func removeHostTable() async {
        _ = try? await NetworkCommand.run([configuration.nftBinary, "delete", "table", "inet", Self.hostTableName(tag: tag)])
        hostTableReady = false
    }

    /// Replies from the internet arrive on the host's uplink, which must forward them.
    func warnAboutUplinkForwarding() {
        guard !warnedAboutUplink else { return }
        warnedAboutUplink = true
        guard let routes = try? String(contentsOfFile: "/proc/net/route", encoding: .utf8) else { return }
        for line in routes.split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count > 2, fields[1] == "00000000" else { continue }
            let device = String(fields[0])
            let forwarding = (try? String(contentsOfFile: "/proc/sys/net/ipv4/conf/\(device)/forwarding", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if forwarding == "0" {
                logger.warning(
                    "the host does not forward IPv4 on its uplink: sandboxes reach only networks on other devices (sysctl net.ipv4.conf.\(device).forwarding=1 or net.ipv4.ip_forward=1)",
                    metadata: ["device": "\(device)"])
            }
        }
    }

    /// The table a server made on the host (tests remove it with the server's data).
    public static func hostTableName(tag: String) -> String { "omnirun_\(tag)" }

    /// First non-loopback `nameserver` of /etc/resolv.conf.
    static func hostResolver() -> String? {
        guard let text = try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "nameserver", let address = IPv4.parse(String(words[1])),
                address >> 24 != 127
            else { continue }
            return String(words[1])
        }
        return nil
    }

    static func checkAvailability(_ configuration: Configuration) -> String? {
        guard configuration.enabled else { return "it is turned off (OMNIRUN_NETWORK=off)" }
        for tool in [configuration.ipBinary, configuration.nftBinary, configuration.nsenterBinary]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (install iproute2, nftables and util-linux)"
        }
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let caps = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return "the server's capabilities cannot be read" }
        // CAP_NET_ADMIN (12) for namespaces, devices and nftables; CAP_SYS_ADMIN (21) to enter namespaces.
        guard caps & (1 << 12) != 0, caps & (1 << 21) != 0 else {
            return "the server lacks CAP_NET_ADMIN/CAP_SYS_ADMIN (run it as root or grant them)"
        }
        guard FileManager.default.isWritableFile(atPath: "/run") else { return "/run is not writable" }
        return nil
    }
}
