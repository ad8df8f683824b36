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

    @Test func tagsDependOnTheDataDirectoryOnly() {
        let tag = HostNetwork.tag(forDataDirectory: "/srv/omnirun")
        #expect(tag.count == 6 && tag.allSatisfy(\.isHexDigit))
        #expect(tag == HostNetwork.tag(forDataDirectory: "/srv/omnirun"))
        #expect(tag != HostNetwork.tag(forDataDirectory: "/srv/omnirun2"))
        // Host device names (orn + tag + slot) fit the kernel's 15 characters.
        #expect(("orn" + tag + "16383").count <= 15)
    }
}
