import Foundation
import Logging
import NIOPosix
import OmniRunCore
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Internet access for sandboxes that ask for it. Each such sandbox gets a network
/// namespace holding the TAP device of its guest and one end of a veth pair; the other
/// end is on the host. Every guest has the same interface (`10.0.2.15/24`, gateway and
/// DNS `10.0.2.2`), so one snapshot serves all; the namespace NATs it to its own veth
/// address (`10.203.x.y`, a /30 each) and the host NATs that out. The firewall in the
/// namespace enforces the sandbox's egress policy; the host's refuses traffic between
/// sandboxes and from sandboxes to the host itself.
///
/// Everything is named after a tag of the server's data directory (namespaces
/// `omnirun-<tag>-<sandbox>`, host devices `orn<tag><slot>`, the nftables table
/// `omnirun_<tag>`), so that servers sharing a host never touch each other's objects.
public actor HostNetwork {
    public struct Configuration: Sendable {
        public var dataDirectory: String
        /// Off: `internet: true` is refused (`OMNIRUN_NETWORK=off`).
        public var enabled = true
        /// The resolver the guests' DNS queries go to (`OMNIRUN_NETWORK_DNS`; default: the
        /// first non-loopback `nameserver` of the host's /etc/resolv.conf).
        public var resolver: String?
        /// Addresses used for names in policies instead of the host's resolver
        /// (`OMNIRUN_NETWORK_HOSTS="name=ip,name=ip"`).
        public var nameOverrides: [String: [String]] = [:]
        public var ipBinary = "/usr/sbin/ip"
        public var nftBinary = "/usr/sbin/nft"
        public var nsenterBinary = "/usr/bin/nsenter"

        public init(dataDirectory: String) {
            self.dataDirectory = dataDirectory
        }
    }

    /// The guest's side, the same in every sandbox (`MachineNIC`).
    static let gatewayAddress = MachineNIC.gatewayAddress
    static let tapDevice = "tap0"
    static let gatewayMAC = "52:54:00:0a:00:02"
    /// The namespace's end of the veth pair (inside the namespace).
    static let uplinkDevice = "eth0"
    /// Host-side veth addresses: a /30 per sandbox in 10.203.0.0/16.
    static let hostSubnet = "10.203.0.0/16"
    static let slotCount = 16384
    static let devicePrefix = "orn"

    public nonisolated let configuration: Configuration
    /// Unique to the data directory (6 hex digits).
    public nonisolated let tag: String
    private let logger: Logger
    private var hostTableReady = false
    /// Ports 443 and 80 of sandboxes whose policy names domains (started with the host table).
    private var proxy: DomainProxy?
    /// Policies by the sandbox namespace's address (the proxy's peers), and the
    /// addresses of each namespace (host end, namespace end).
    private var policies: [String: EgressPolicy] = [:]
    private var addresses: [String: (host: String, namespace: String)] = [:]
    private var warnedAboutUplink = false
    private lazy var unavailableReason: String? = Self.checkAvailability(configuration)

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.tag = Self.tag(forDataDirectory: configuration.dataDirectory)
        self.logger = logger
    }

    public static func tag(forDataDirectory directory: String) -> String {
        String(stableHash("network|" + directory).prefix(6))
    }

    /// The names of the namespaces of one server.
    public static func namespacePrefix(tag: String) -> String { "omnirun-\(tag)-" }

    public nonisolated func namespace(of id: SandboxID) -> String { Self.namespacePrefix(tag: tag) + id.rawValue }

    /// Nil when sandboxes can have internet access here; else why not.
    public func availability() -> String? { unavailableReason }

    /// The namespace, devices, addresses and firewall of a new sandbox; returns the card
    /// its machine gets. Removes what it made if any step fails.
    public func setUp(_ id: SandboxID, policy: EgressPolicy?) async throws -> MachineNIC {
        if let reason = unavailableReason {
            throw OmniRunError(.unavailable, "internet access is not available on this server: \(reason)")
        }
        try await ensureHostTable()
        let namespace = self.namespace(of: id)
        do {
            try await createNamespace(namespace)
            try await applyFirewall(namespace, policy: policy ?? EgressPolicy(), initial: true)
        } catch {
            await tearDown(id)
            throw error
        }
        return .tap(namespace: namespace, device: Self.tapDevice)
    }

    /// Replaces the sandbox's egress policy; new connections follow it at once.
    public func apply(_ policy: EgressPolicy, to id: SandboxID) async throws {
        let namespace = self.namespace(of: id)
        guard FileManager.default.fileExists(atPath: "/run/netns/\(namespace)") else {
            throw OmniRunError(.conflict, "sandbox \(id) has no internet access (create it with internet: true)")
        }
        try await applyFirewall(namespace, policy: policy, initial: false)
    }

    /// Removes the sandbox's namespace and with it every device, address, route and
    /// firewall rule it had. Idempotent.
    public func tearDown(_ id: SandboxID) async {
        let namespace = self.namespace(of: id)
        if let known = addresses.removeValue(forKey: namespace) { policies[known.namespace] = nil }
        await remove(namespace: namespace)
    }

    /// Removes this server's namespaces that belong to no sandbox in `keeping` (after a crash).
    public func removeOrphans(keeping: Set<SandboxID>) async {
        let prefix = Self.namespacePrefix(tag: tag)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        for name in names where name.hasPrefix(prefix) {
            if let id = SandboxID(String(name.dropFirst(prefix.count))), keeping.contains(id) { continue }
            await remove(namespace: name)
            logger.warning("removed an orphaned sandbox network", metadata: ["namespace": "\(name)"])
        }
    }

    /// Whether the sandbox has a namespace (internet access).
    public nonisolated func hasNamespace(_ id: SandboxID) -> Bool {
        FileManager.default.fileExists(atPath: "/run/netns/\(namespace(of: id))")
    }

    private func remove(namespace: String) async {
        guard FileManager.default.fileExists(atPath: "/run/netns/\(namespace)") else { return }
        // Deleting the veth end inside removes the pair at once (a namespace's own
        // devices go only when its last user has gone, asynchronously).
        _ = try? await NetworkCommand.run([configuration.ipBinary, "-n", namespace, "link", "del", Self.uplinkDevice])
        do {
            try await NetworkCommand.run([configuration.ipBinary, "netns", "del", namespace])
        } catch {
            logger.error("removing a sandbox network failed", metadata: ["namespace": "\(namespace)", "error": "\(error)"])
        }
    }

    // MARK: - Building

    private func createNamespace(_ namespace: String) async throws {
        // Slots are shared by every server on the host: pick and claim one under a host-wide lock.
        let lock = try FileLock(path: "/run/omnirun-network.lock")
        try await lock.acquire()
        defer { lock.release() }
        let used = try await usedSlots()
        guard let slot = (0..<Self.slotCount).first(where: { !used.contains($0) }) else {
            throw OmniRunError(.limitReached, "no free network slot on this host (\(Self.slotCount) sandboxes with internet access)")
        }
        let base = UInt32(10 << 24 | 203 << 16) + UInt32(slot * 4)
        let hostAddress = IPv4.format(base + 1)
        let namespaceAddress = IPv4.format(base + 2)
        let hostDevice = "\(Self.devicePrefix)\(tag)\(slot)"
        try await NetworkCommand.run(
            [configuration.ipBinary, "-batch", "-"],
            input: """
                netns add \(namespace)
                link add \(hostDevice) type veth peer name \(Self.uplinkDevice) netns \(namespace)
                addr add \(hostAddress)/30 dev \(hostDevice)
                link set \(hostDevice) up

                """)
        try await NetworkCommand.run(
            [configuration.ipBinary, "-n", namespace, "-batch", "-"],
            input: """
                link set lo up
                tuntap add \(Self.tapDevice) mode tap
                link set \(Self.tapDevice) address \(Self.gatewayMAC)
                addr add \(Self.gatewayAddress)/\(MachineNIC.guestPrefix) dev \(Self.tapDevice)
                link set \(Self.tapDevice) up
                addr add \(namespaceAddress)/30 dev \(Self.uplinkDevice)
                link set \(Self.uplinkDevice) up
                route add default via \(hostAddress)

                """)
        // The host forwards what arrives on this device (and only this one).
        try "1".write(toFile: "/proc/sys/net/ipv4/conf/\(hostDevice)/forwarding", atomically: false, encoding: .utf8)
        addresses[namespace] = (hostAddress, namespaceAddress)
    }

    /// A namespace's addresses (read back from the namespace after a server restart).
    private func addressesOf(_ namespace: String) async throws -> (host: String, namespace: String) {
        if let known = addresses[namespace] { return known }
        let listing = try await NetworkCommand.run(
            [configuration.ipBinary, "-n", namespace, "-o", "-4", "addr", "show", "dev", Self.uplinkDevice])
        guard let word = listing.split(separator: " ").first(where: { $0.hasPrefix("10.203.") }),
            let address = IPv4.parse(String(word.split(separator: "/")[0]))
        else { throw OmniRunError(.internalError, "namespace \(namespace) has no address") }
        let found = (IPv4.format(address - 1), IPv4.format(address))
        addresses[namespace] = found
        return found
    }

    /// Where the proxy may send a sandbox's connection for `name`: the name's own address
    /// when the sandbox's policy allows the name, else nil (the connection is reset).
    func proxyDecision(peer: String, name: String) async -> String? {
        guard let policy = policies[peer], !name.isEmpty else { return nil }
        func matches(_ list: [String]?) -> Bool {
            (list ?? []).contains { entry in
                entry.hasPrefix("*.") ? name.hasSuffix(String(entry.dropFirst())) : entry == name
            }
        }
        if matches(policy.denyDomains) { return nil }
        if policy.isAllowList, !matches(policy.allowDomains) { return nil }
        let resolved = (try? await resolve([name])) ?? []
        // Never the sandboxes' own networks nor the host itself.
        return resolved.map { String($0.split(separator: "/")[0]) }.first { address in
            guard let value = IPv4.parse(address) else { return false }
            return value >> 16 != UInt32(10 << 8 | 203) && value >> 24 != 127 && value >> 24 != 0
        }
    }

    /// Slots whose host address is on some device of the host.
    private func usedSlots() async throws -> Set<Int> {
        let listing = try await NetworkCommand.run([configuration.ipBinary, "-o", "-4", "addr", "show"])
        var slots = Set<Int>()
        for line in listing.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard let index = words.firstIndex(of: "inet"), index + 1 < words.count else { continue }
            guard let address = IPv4.parse(String(words[index + 1].split(separator: "/")[0])),
                address >> 16 == UInt32(10 << 8 | 203)
            else { continue }
            slots.insert(Int(address & 0xffff) / 4)
        }
        return slots
    }

    /// The namespace's firewall: DNS to the resolver, NAT out, nothing to the namespace
    /// itself, and the egress policy (rewritten whole, in one transaction, on a change).
    private func applyFirewall(_ namespace: String, policy: EgressPolicy, initial: Bool) async throws {
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
        script += "flush chain inet omnirun egress\n"
        for rule in egress {
            script += "add rule inet omnirun egress \(rule)\n"
        }
        try await NetworkCommand.run(
            [
                configuration.nsenterBinary, "--net=/run/netns/\(namespace)", "--", "/bin/sh", "-c",
                (initial ? "echo 1 > /proc/sys/net/ipv4/ip_forward && " : "") + "exec \(configuration.nftBinary) -f -",
            ], input: script)
        policies[namespaceAddress] = policy
    }

    private func egressRules(_ policy: EgressPolicy, resolver: String?) async throws -> [String] {
        let refuse = ["meta l4proto tcp reject with tcp reset", "reject"]
        var rules = ["ct state established,related accept", "meta nfproto ipv6 reject"]
        if let resolver {
            rules += ["ip daddr \(resolver) udp dport 53 accept", "ip daddr \(resolver) tcp dport 53 accept"]
        }
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
    private func resolve(_ names: [String]) async throws -> [String] {
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

    private static func lookUp(_ name: String) -> [String] {
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

    /// The host's table: nothing from a sandbox to the host itself or to another
    /// sandbox; sandboxes' traffic leaves with the host's address. Made once per run.
    private func ensureHostTable() async throws {
        guard !hostTableReady else { return }
        if proxy == nil {
            proxy = try DomainProxy(group: MultiThreadedEventLoopGroup.singleton) { [weak self] peer, name in
                await self?.proxyDecision(peer: peer, name: name)
            }
        }
        let ports = proxy.map { "\($0.tlsPort), \($0.httpPort)" } ?? "1"
        let table = "omnirun_\(tag)"
        let devices = "\(Self.devicePrefix)*"
        try await NetworkCommand.run(
            [configuration.nftBinary, "-f", "-"],
            input: """
                table inet \(table)
                delete table inet \(table)
                table inet \(table) {
                  chain input {
                    type filter hook input priority filter - 10; policy accept;
                    iifname "\(devices)" ct state established,related accept
                    iifname "\(devices)" tcp dport { \(ports) } accept
                    iifname "\(devices)" meta l4proto tcp reject with tcp reset
                    iifname "\(devices)" reject
                  }
                  chain forward {
                    type filter hook forward priority filter - 10; policy accept;
                    iifname "\(devices)" oifname "\(devices)" reject
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
    private func warnAboutUplinkForwarding() {
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
