import Foundation
import OmniRunError
import OmniRunStore
import Testing

@testable import OmniRunControl
@testable import OmniRunServer

/// Which node a create goes to, and the settings that name nodes: pure functions, no server.
@Suite("Placement and node settings")
struct PlacementUnitTests {
    static func node(_ id: String, region: String = "a", lease: Int64 = 10_000, draining: Bool = false, running: Int = 0, templates: [String] = ["playground"])
        -> NodeRecord
    {
        NodeRecord(
            id: id, region: region, advertiseURL: "http://127.0.0.1:1", startedAt: 0, leaseExpiresAt: lease, draining: draining, vcpus: 2,
            memoryMB: 1024, diskMB: 1024, running: running, templates: templates, load: 0)
    }

    @Test func onlyNodesUpNotDrainingInTheRegionAndHoldingTheTemplateAreChosen() {
        let nodes = [
            Self.node("down", lease: 10), Self.node("draining", draining: true), Self.node("elsewhere", region: "b"),
            Self.node("without", templates: []), Self.node("with"),
        ]
        for _ in 0..<50 {
            #expect(PlacementMiddleware.choose(nodes, region: "a", template: "playground", now: 1_000)?.id == "with")
        }
        // No node holds the template: any node up in the region.
        let picked = Set((0..<50).compactMap { _ in PlacementMiddleware.choose(nodes, region: "a", template: "rust", now: 1_000)?.id })
        #expect(picked.isSubset(of: ["without", "with"]) && !picked.isEmpty)
        #expect(PlacementMiddleware.choose(nodes, region: "c", template: "playground", now: 1_000) == nil)
        #expect(PlacementMiddleware.choose(nodes, region: "a", template: "playground", now: 20_000) == nil, "every lease ran out")
    }

    @Test func theBetterOfTwoIsTheLessBusy() {
        // Of two nodes, the idle one always wins; of many, the busiest never does.
        let two = [Self.node("idle"), Self.node("busy", running: 8)]
        for _ in 0..<50 { #expect(PlacementMiddleware.choose(two, region: "a", template: "playground", now: 0)?.id == "idle") }
        let many = (0..<5).map { Self.node("n\($0)", running: $0 * 3) }
        for _ in 0..<100 { #expect(PlacementMiddleware.choose(many, region: "a", template: "playground", now: 0)?.id != "n4") }
    }

    @Test func regionsNodeIDsAndAdvertiseURLsAreCheckedAtStart() throws {
        let base = "/tmp/omnirun-config-test"
        let good = try ServerConfiguration.load(
            environment: ["OMNIRUN_REGION": "eu-central-1", "OMNIRUN_ADVERTISE_URL": "https://10.0.0.11:8443", "OMNIRUN_NODE_LEASE": "99999999"],
            dataDirectory: base, arguments: .init(nodeID: "fra-1"))
        #expect(good.nodeID == "fra-1" && good.region == "eu-central-1" && good.advertiseURL == "https://10.0.0.11:8443")
        #expect(good.nodeLease == .seconds(3600))
        for (name, value) in [
            ("OMNIRUN_REGION", "EU"), ("OMNIRUN_REGION", "-a"), ("OMNIRUN_NODE_ID", "a/b"), ("OMNIRUN_NODE_ID", String(repeating: "n", count: 41)),
            ("OMNIRUN_ADVERTISE_URL", "ftp://x"), ("OMNIRUN_ADVERTISE_URL", "10.0.0.1:80"),
        ] {
            #expect(throws: OmniRunError.self, "\(name)=\(value)") {
                try ServerConfiguration.load(environment: [name: value], dataDirectory: base, arguments: .init())
            }
        }
        #expect(throws: OmniRunError.self) { try PlacementMiddleware.region("Mars") }
        #expect(throws: OmniRunError.self) { try PlacementMiddleware.region(42) }
        #expect(try PlacementMiddleware.region(nil) == nil)
        #expect(try PlacementMiddleware.region("local-b") == "local-b")
    }
}
