import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Three real `omnirun serve` nodes on one real PostgreSQL (own data directories and
/// ports; regions `local-a` and `local-b`): leases, the account's limit across nodes,
/// a node killed with -9, a drain (docs/multi-node.md).
@Suite("Nodes sharing one PostgreSQL", .serialized, .timeLimit(.minutes(10)))
struct MultiNodeTests {
    static let postgres = ProcessInfo.processInfo.environment["OMNIRUN_TEST_POSTGRES_URL"]

    @Test(.enabled(if: postgres != nil))
    func threeNodesShareLeasesLimitsAndTheirDeadsSandboxes() async throws {
        let url = Self.postgres ?? ""
        let name = "omnirun_nodes_\(getpid())"
        try RecoveryTests.psql(url, "DROP DATABASE IF EXISTS \(name)")
        try RecoveryTests.psql(url, "CREATE DATABASE \(name)")
        let database = url.replacingOccurrences(of: "/postgres?", with: "/\(name)?")
        var servers: [TestServer] = []
        do {
            for (index, region) in ["local-a", "local-a", "local-b"].enumerated() {
                // One after the other: the first makes the schema and the owner's account.
                servers.append(
                    try await TestServer.start(
                        name: "node-\(index + 1)",
                        environment: [
                            "OMNIRUN_DATABASE": database, "OMNIRUN_NODE_ID": "node-\(index + 1)", "OMNIRUN_REGION": region,
                            "OMNIRUN_NODE_LEASE": "3", "OMNIRUN_NODE_LOST_GRACE": "2", "OMNIRUN_CONCURRENT_LIMIT": "3",
                        ]))
            }
            let key = servers[0].ownerKey
            let clients = servers.map { $0.client(key: key) }

            // Every node is listed, up, with its region and the templates it has snapshots of.
            let listed = try await Self.waitForNodes(database, count: 3)
            #expect(listed.map { $0["id"] as? String } == ["node-1", "node-2", "node-3"])
            #expect(listed.map { $0["region"] as? String } == ["local-a", "local-a", "local-b"])
            #expect(listed.allSatisfy { $0["state"] as? String == "up" })
            #expect(try await clients[2].get("/status").object["region"] as? String == "local-b")

            // Placement and relay: a create on node 1 for region local-b lands on node 3, and
            // everything about it works through node 1 (and node 2): commands with SSE, files
            // both ways (5 MiB), a PTY, the sandbox's record, its kill.
            let remote = try await clients[0].post("/sandboxes", ["template": "playground", "timeout": 300, "region": "local-b"])
            #expect(remote.status == 201, "\(remote.text)")
            #expect(remote.object["node"] as? String == "node-3")
            #expect(remote.object["region"] as? String == "local-b")
            let far = remote.object["sandboxID"] as? String ?? ""
            let run = try await clients[0].post("/sandboxes/\(far)/commands", ["command": "hostname; echo relayed"])
            #expect((run.object["stdout"] as? String ?? "").hasSuffix("relayed\n"), "\(run.text)")
            let background = try await clients[0].post("/sandboxes/\(far)/commands", ["command": "for i in 1 2 3; do echo tick-$i; done", "background": true])
            let pid = background.object["pid"] as? Int ?? 0
            let events = try await clients[1].events("/sandboxes/\(far)/commands/\(pid)/stream")
            let streamed = events.compactMap { $0["data"] as? String ?? $0["stdout"] as? String }.joined()
            #expect(streamed.contains("tick-3"), "\(events)")
            var payload = Data(count: 5 << 20)
            payload.withUnsafeMutableBytes { raw in
                for i in 0..<raw.count { raw[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
            }
            let upload = try await clients[0].request(
                "PUT", "/sandboxes/\(far)/files/upload?path=%2Ftmp%2Fblob.bin", body: payload, contentType: "application/octet-stream")
            #expect((200..<300).contains(upload.status), "\(upload.text)")
            let download = try await clients[1].get("/sandboxes/\(far)/files/download?path=%2Ftmp%2Fblob.bin")
            #expect(download.status == 200)
            #expect(download.body == payload)
            let pty = try await clients[0].post("/sandboxes/\(far)/pty", ["cols": 80, "rows": 24])
            let ptyPID = pty.object["pid"] as? Int ?? 0
            _ = try await clients[0].post("/sandboxes/\(far)/pty/\(ptyPID)/input", ["data": "echo pty-over-relay\n"])
            var screen = ""
            for _ in 0..<40 where !screen.contains("pty-over-relay\r\n") {
                screen += try await clients[0].get("/sandboxes/\(far)/pty/\(ptyPID)/read").object["data"] as? String ?? ""
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(screen.contains("pty-over-relay"), "\(screen)")
            #expect(try await clients[1].get("/sandboxes/\(far)").object["node"] as? String == "node-3")
            // A request that says it was relayed already is not relayed again (no loops
            // between nodes that disagree, whoever sets the header).
            let looped = try await clients[0].request("GET", "/sandboxes/\(far)", headers: ["x-omnirun-relayed-by": "node-9"])
            #expect(looped.status == 503, "\(looped.text)")
            #expect(try await clients[0].delete("/sandboxes/\(far)").status == 204)
            #expect(try await clients[2].get("/sandboxes/\(far)").status == 404)
            let nowhere = try await clients[0].post("/sandboxes", ["template": "playground", "region": "mars-1"])
            #expect(nowhere.status == 400, "\(nowhere.text)")

            // Racing creates on all three nodes for one account (limit 3): exactly 3 succeed,
            // each says which node runs it and that node's region.
            let attempts = try await withThrowingTaskGroup(of: HTTPTestClient.Reply.self) { group in
                for attempt in 0..<9 {
                    let client = clients[attempt % 3]
                    group.addTask { try await client.post("/sandboxes", ["template": "playground", "timeout": 300]) }
                }
                var replies: [HTTPTestClient.Reply] = []
                for try await reply in group { replies.append(reply) }
                return replies
            }
            let created = attempts.filter { $0.status == 201 }
            #expect(created.count == 3, "\(attempts.map { "\($0.status) \($0.text.prefix(120))" })")
            #expect(attempts.filter { $0.status == 429 }.count == 6, "\(attempts.map(\.status))")
            for reply in created {
                let node = reply.object["node"] as? String ?? ""
                #expect(["node-1", "node-2", "node-3"].contains(node))
                #expect(reply.object["region"] as? String == (node == "node-3" ? "local-b" : "local-a"))
                let id = reply.object["sandboxID"] as? String ?? ""
                #expect(try await clients[0].delete("/sandboxes/\(id)").status == 204)
            }

            // A sandbox on node 3 and one in local-a; node 3 dies (kill -9): its sandbox ends
            // as lost within the lease and the grace, the other runs on, node 3 is down and
            // region local-b takes no creates.
            let onThird = try await clients[1].post("/sandboxes", ["template": "playground", "timeout": 300, "region": "local-b"])
            #expect(onThird.object["node"] as? String == "node-3")
            let lostID = onThird.object["sandboxID"] as? String ?? ""
            let local = try await clients[0].post("/sandboxes", ["template": "playground", "timeout": 300])
            let kept = local.object["sandboxID"] as? String ?? ""
            let keptNode = local.object["node"] as? String ?? ""
            servers[2].crash()
            let died = Date()
            var history: [[String: Any]] = []
            while Date().timeIntervalSince(died) < 30 {
                history = try await clients[0].get("/sandboxes/history").array
                if history.contains(where: { $0["sandboxID"] as? String == lostID }) { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            let lostAfter = Date().timeIntervalSince(died)
            #expect(history.first { $0["sandboxID"] as? String == lostID }?["endReason"] as? String == "lost", "\(history)")
            #expect(lostAfter < 3 + 2 + 3, "lost after \(lostAfter) s")
            let still = try await clients[0].post("/sandboxes/\(kept)/commands", ["command": "echo still-here"])
            #expect(still.object["stdout"] as? String == "still-here\n")
            let afterCrash = try await Self.nodes(database)
            #expect(afterCrash.first { $0["id"] as? String == "node-3" }?["state"] as? String == "down")
            #expect(try await clients[0].post("/sandboxes", ["template": "playground", "region": "local-b"]).status == 400)
            print("[figures] multi-node: a killed node's sandbox ended as lost after \(String(format: "%.1f", lostAfter)) s (lease 3 s, grace 2 s)")

            // Drain the node that runs the kept sandbox: creates sent to it land on the other
            // local-a node, and the drain waits until the sandbox has ended.
            let drained = keptNode == "node-1" ? 0 : 1
            let drain = try Self.startTool(["node", "drain", keptNode, "--database", database])
            var waited = 0
            while (try await Self.nodes(database)).first(where: { $0["id"] as? String == keptNode })?["state"] as? String != "draining",
                waited < 40
            {
                try await Task.sleep(for: .milliseconds(250))
                waited += 1
            }
            let elsewhere = try await clients[drained].post("/sandboxes", ["template": "playground", "timeout": 300])
            #expect(elsewhere.status == 201, "\(elsewhere.text)")
            #expect(elsewhere.object["node"] as? String == "node-\(2 - drained)")
            #expect(drain.process.isRunning, "the drain waits for the node's sandbox")
            #expect(try await clients[1 - drained].delete("/sandboxes/\(kept)").status == 204)
            drain.process.waitUntilExit()
            #expect(drain.process.terminationStatus == 0)
            #expect(drain.output().contains("\(keptNode) is drained"), "\(drain.output())")
            #expect(try await clients[0].delete("/sandboxes/\(elsewhere.object["sandboxID"] as? String ?? "")").status == 204)
        } catch {
            for server in servers { await server.shutdown() }
            throw error
        }
        for server in servers { await server.shutdown() }
        try? RecoveryTests.psql(url, "DROP DATABASE IF EXISTS \(name)")
    }

    static func nodes(_ database: String) async throws -> [[String: Any]] {
        let tool = try startTool(["node", "list", "--json", "--database", database])
        tool.process.waitUntilExit()
        guard let nodes = (try? JSONSerialization.jsonObject(with: Data(tool.output().utf8))) as? [[String: Any]] else {
            throw TestSetupError("omnirun node list printed \(tool.output()) \(tool.errors())")
        }
        return nodes
    }

    static func waitForNodes(_ database: String, count: Int) async throws -> [[String: Any]] {
        var nodes: [[String: Any]] = []
        for _ in 0..<40 {
            nodes = try await Self.nodes(database)
            if nodes.count >= count { return nodes }
            try await Task.sleep(for: .milliseconds(250))
        }
        return nodes
    }

    /// `omnirun …` started in the background, its standard output kept in a file.
    struct Tool {
        let process: Process
        let outputPath: String
        func output() -> String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
        func errors() -> String { (try? String(contentsOfFile: outputPath + ".err", encoding: .utf8)) ?? "" }
    }

    static func startTool(_ arguments: [String]) throws -> Tool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestServer.binary)
        process.arguments = arguments
        let path = TestRuntime.dataDirectory + "/node-tool-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        _ = FileManager.default.createFile(atPath: path + ".err", contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: path + ".err"))
        try process.run()
        return Tool(process: process, outputPath: path)
    }
}
