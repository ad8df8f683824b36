import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import OmniRunStore
import Testing

@testable import OmniRunControl

/// Node-to-node calls are the cluster's only: what a key holder or the public can send to
/// look like another node — the relay header, a forged or replayed signature, the
/// `/internal/…` routes — is refused, and a signed call cannot reach past what the routes give.
@Suite("Control plane: node-to-node calls")
struct NodeCallTests {
    func call(
        _ plane: ControlPlane, _ method: HTTPRequest.Method, _ path: String, headers extra: [String: String], key: Bool = true
    ) async throws -> ControlPlane.Reply {
        var headers: HTTPFields = [:]
        if key { headers[.init("X-API-Key")!] = plane.ownerKey }
        for (name, value) in extra { headers[.init(name)!] = value }
        let response = try await plane.client.executeRequest(uri: path, method: method, headers: headers, body: nil)
        return ControlPlane.Reply(status: Int(response.status.code), body: Array(response.body.readableBytesView))
    }

    /// The cluster's secret as the nodes read it from the shared store.
    func auth(_ plane: ControlPlane, node: String) async throws -> ClusterAuth {
        let secret = try #require(try await SettingsRepository(database: plane.database).value("cluster-secret"))
        return ClusterAuth(node: node, secret: try #require(Data(base64Encoded: secret)))
    }

    @Test func onlyASignedNodeMaySayItRelayedARequest() async throws {
        try await ControlPlane.run { plane in
            let sandbox = try await plane.createSandbox()
            let path = "/sandboxes/\(sandbox.sandboxID)"
            // A key holder setting the relay header: refused, with the JSON error body.
            let forged = try await call(plane, .get, path, headers: ["x-omnirun-relayed-by": "node-2"])
            #expect(forged.status == 401)
            #expect(try forged.decode(WireError.self).message.contains("signature"))
            // Another secret, another route's signature, the header naming another node, a huge value.
            let stranger = ClusterAuth(node: "node-2", secret: Data(repeating: 1, count: 32))
            let node2 = try await auth(plane, node: "node-2")
            let attempts: [[String: String]] = [
                ["x-omnirun-relayed-by": "node-2", "x-omnirun-node-auth": stranger.sign(method: "GET", target: path)],
                ["x-omnirun-relayed-by": "node-2", "x-omnirun-node-auth": node2.sign(method: "GET", target: "/sandboxes")],
                ["x-omnirun-relayed-by": "node-3", "x-omnirun-node-auth": node2.sign(method: "GET", target: path)],
                ["x-omnirun-relayed-by": "node-2", "x-omnirun-node-auth": node2.sign(method: "GET", target: path, at: nowMillis() - 120_000)],
                ["x-omnirun-relayed-by": "node-2", "x-omnirun-node-auth": String(repeating: "t=1,", count: 4000)],
            ]
            for headers in attempts {
                #expect(try await call(plane, .get, path, headers: headers).status == 401, "\(headers)")
            }
            // Signed by a node of the cluster: the request is taken as relayed (served here, as
            // this node owns the sandbox; the caller's key is still checked).
            let signed = ["x-omnirun-relayed-by": "node-2", "x-omnirun-node-auth": node2.sign(method: "GET", target: path)]
            #expect(try await call(plane, .get, path, headers: signed).status == 200)
            #expect(try await call(plane, .get, path, headers: signed, key: false).status == 401)
        }
    }

    @Test func theInternalRoutesAnswerNodesOnlyAndGiveNoMore() async throws {
        try await ControlPlane.run { plane in
            let sandbox = try await plane.createSandbox()
            // With the owner's key and no signature: refused.
            for (method, path) in [
                (HTTPRequest.Method.get, "/internal/templates/playground"), (.get, "/internal/templates/playground/rootfs"),
                (.post, "/internal/sandboxes/\(sandbox.sandboxID)/adopt"), (.get, "/internal/sandboxes/\(sandbox.sandboxID)/moving/state"),
            ] {
                #expect(try await call(plane, method, path, headers: [:]).status == 401, "\(method) \(path)")
            }
            let node2 = try await auth(plane, node: "node-2")
            func signed(_ method: HTTPRequest.Method, _ path: String) async throws -> ControlPlane.Reply {
                try await call(plane, method, path, headers: ["x-omnirun-node-auth": node2.sign(method: method.rawValue, target: path)], key: false)
            }
            // Built-in templates are every node's own: never handed out; nor are names that walk.
            #expect(try await signed(.get, "/internal/templates/playground").status == 404)
            #expect(try await signed(.get, "/internal/templates/python-3.11/rootfs").status == 404)
            #expect(try await signed(.get, "/internal/templates/..%2F..%2Fetc").status == 404)
            // Only a sandbox being handed over has files to fetch, and only its two parts.
            #expect(try await signed(.get, "/internal/sandboxes/\(sandbox.sandboxID)/moving").status == 404)
            #expect(try await signed(.get, "/internal/sandboxes/\(sandbox.sandboxID)/moving/state").status == 404)
            #expect(try await signed(.get, "/internal/sandboxes/\(sandbox.sandboxID)/moving/paused.json").status == 404)
            // A running sandbox, or one another node does not hold paused, is not taken in.
            #expect(try await signed(.post, "/internal/sandboxes/\(sandbox.sandboxID)/adopt").status == 409)
            #expect(try await signed(.post, "/internal/sandboxes/not-an-id!/adopt").status == 404)
            let ended = try await plane.createSandbox()
            #expect(try await plane.call(.delete, "/sandboxes/\(ended.sandboxID)").status == 204)
            #expect(try await signed(.post, "/internal/sandboxes/\(ended.sandboxID)/adopt").status == 409)
            #expect(try await signed(.get, "/internal/sandboxes/\(sandbox.sandboxID)/adopt").decode(ArrivalStatus.self).state == "failed")
            // The sandbox still runs here, untouched.
            #expect(try await plane.run("echo still", in: sandbox.sandboxID).stdout == "still\n")
        }
    }
}
