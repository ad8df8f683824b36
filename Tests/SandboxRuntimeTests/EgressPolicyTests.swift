import Foundation
import OmniRunError
import Testing

@testable import SandboxRuntime

@Suite("Egress policy checks")
struct EgressPolicyTests {
    @Test func addressesAndCIDRsAreNormalised() throws {
        let policy = try EgressPolicy(allowIPs: ["10.1.2.3", "10.1.2.3/8", "0.0.0.0/0"], denyIPs: ["192.168.7.9/24"]).validated()
        #expect(policy.allowIPs == ["10.1.2.3/32", "10.0.0.0/8", "0.0.0.0/0"])
        #expect(policy.denyIPs == ["192.168.7.0/24"])
        #expect(policy.isAllowList)
    }

    @Test func badEntriesAreRefused() {
        for bad in ["10.0.0.256", "10.0.0", "10.0.0.1/33", "10.0.0.1/-1", "::1", "2001:db8::/32", "", "a.b.c.d", "1.2.3.4 "] {
            #expect(throws: OmniRunError.self, "\(bad)") { try EgressPolicy(allowIPs: [bad]).validated() }
        }
        for bad in ["", "bad name", "-x.com", "a..b", "é.com", String(repeating: "a", count: 64) + ".com"] {
            #expect(throws: OmniRunError.self, "\(bad)") { try EgressPolicy(denyDomains: [bad]).validated() }
        }
        #expect(throws: OmniRunError.self) { try EgressPolicy(denyIPs: Array(repeating: "1.1.1.1", count: 257)).validated() }
    }

    @Test func namesAreLowercasedAndWildcardsKept() throws {
        let policy = try EgressPolicy(allowDomains: ["PyPI.org", "*.Example.com"]).validated()
        #expect(policy.allowDomains == ["pypi.org", "*.example.com"])
    }

    @Test func onlyAnAllowListOrDefaultDenyRefusesTheRest() {
        #expect(!EgressPolicy().isAllowList)
        #expect(!EgressPolicy(allowDomains: [], denyIPs: ["1.1.1.1"]).isAllowList)
        #expect(EgressPolicy(allowDomains: ["a.com"]).isAllowList)
        var sniOnly = EgressPolicy()
        sniOnly.defaultDeny = true
        #expect(sniOnly.isAllowList)
    }

    @Test func privateNetworksAreRefusedUnlessAllowed() throws {
        let none = PrivateNetworks.none
        for address in ["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255", "127.0.0.1",
            "169.254.169.254", "0.1.2.3", "224.0.0.1", "255.255.255.255", "192.0.0.8", "10.203.0.1", "not-an-address"]
        {
            #expect(none.refuses(address), "\(address)")
        }
        for address in ["198.18.0.1", "203.0.113.9", "8.8.8.8", "172.32.0.1", "100.128.0.1", "192.0.2.1", "11.0.0.1"] {
            #expect(!none.refuses(address), "\(address)")
        }
        let lan = try PrivateNetworks(setting: " 10.20.0.0/16, 169.254.169.254 ")
        #expect(lan.allowed == ["10.20.0.0/16", "169.254.169.254/32"])
        #expect(!lan.refuses("10.20.5.6") && !lan.refuses("169.254.169.254"))
        #expect(lan.refuses("10.21.0.1") && lan.refuses("169.254.169.253"))
        #expect(throws: OmniRunError.self) { try PrivateNetworks(setting: "10.0.0.0/33") }
        #expect(throws: OmniRunError.self) { try PrivateNetworks(setting: "fd00::/8") }
        // The operator's exceptions come before the refusals, each refusal a TCP reset and an ICMP one.
        let rules = lan.rules(exception: "goto tenant")
        #expect(rules.prefix(2) == ["ip daddr 10.20.0.0/16 goto tenant", "ip daddr 169.254.169.254/32 goto tenant"])
        #expect(rules.count == 2 + 2 * PrivateNetworks.refused.count)
    }

    @Test func tagsDependOnTheDataDirectoryOnly() {
        let tag = HostNetwork.tag(forDataDirectory: "/srv/omnirun")
        #expect(tag.count == 6 && tag.allSatisfy(\.isHexDigit))
        #expect(tag == HostNetwork.tag(forDataDirectory: "/srv/omnirun"))
        #expect(tag != HostNetwork.tag(forDataDirectory: "/srv/omnirun2"))
        // Host device names (orn + tag + slot) fit the kernel's 15 characters.
        #expect(("orn" + tag + "16383").count <= 15)
    }
}
