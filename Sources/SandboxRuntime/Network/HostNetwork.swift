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
        /// Private networks sandboxes may reach all the same (`OMNIRUN_EGRESS_ALLOW_PRIVATE`;
        /// default none: RFC 1918, CGNAT, link-local, loopback, multicast are refused).
        public var privateNetworks = PrivateNetworks.none
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
    let logger: Logger
    var hostTableReady = false
    /// Ports 443 and 80 of sandboxes whose policy names domains (started with the host table).
    var proxy: DomainProxy?
    /// Policies by the sandbox namespace's address (the proxy's peers), and the
    /// addresses of each namespace (host end, namespace end).
    var policies: [String: EgressPolicy] = [:]
    var addresses: [String: (host: String, namespace: String)] = [:]
    var warnedAboutUplink = false
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
    func addressesOf(_ namespace: String) async throws -> (host: String, namespace: String) {
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
        // Never a private network (unless the operator allows it): a name is no way
        // around the firewall, whatever it resolves to.
        let addresses = resolved.map { String($0.split(separator: "/")[0]) }
        guard let address = addresses.first(where: { !configuration.privateNetworks.refuses($0) }) else {
            if !addresses.isEmpty {
                logger.info(
                    "the domain proxy refused a name that resolves to a private address",
                    metadata: ["name": "\(name)", "addresses": "\(addresses.joined(separator: ","))"])
            }
            return nil
        }
        return address
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
}
