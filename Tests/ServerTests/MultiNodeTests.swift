import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Three real `omnirun serve` nodes on one real PostgreSQL (own data directories and
/// ports; regions `local-a` and `local-b`): leases, the account's limit across nodes,
/// a node killed with -9, a drain (docs/multi-node.md).
@Suite("Nodes sharing one PostgreSQL", .serialized, .timeLimit(.minutes(25)))
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
            // The E2B-compatible endpoint through other nodes: its control route and its envd
            // routes (named by header, opened by the sandbox's token) are relayed to node 3.
            let e2bInfo = try await clients[0].get("/e2b/sandboxes/\(far)")
            #expect(e2bInfo.status == 200, "\(e2bInfo.text)")
            let envdToken = e2bInfo.object["envdAccessToken"] as? String ?? ""
            let envd = ["E2b-Sandbox-Id": far, "X-Access-Token": envdToken]
            let e2bDownload = try await clients[1].request("GET", "/e2b/files?path=%2Ftmp%2Fblob.bin", headers: envd)
            #expect(e2bDownload.status == 200)
            #expect(e2bDownload.body == payload)
            let e2bStat = try await clients[0].request(
                "POST", "/e2b/filesystem.Filesystem/Stat", body: Data(#"{"path":"/tmp/blob.bin"}"#.utf8), contentType: "application/json",
                headers: envd)
            #expect(e2bStat.status == 200 && e2bStat.text.contains("5242880"), "\(e2bStat.text)")
            // Only a node may say it relayed a request (signed with the cluster's secret): a
            // client that sets the header, or forges a signature, is refused, and the
            // node-to-node routes answer nodes only.
            let forged = try await clients[0].request("GET", "/sandboxes/\(far)", headers: ["x-omnirun-relayed-by": "node-9"])
            #expect(forged.status == 401, "\(forged.text)")
            let badSignature = try await clients[0].request(
                "GET", "/sandboxes/\(far)",
                headers: ["x-omnirun-relayed-by": "node-2", "x-omnirun-node-auth": "t=\(Int64(Date().timeIntervalSince1970 * 1000)),n=node-2,s=\(String(repeating: "0", count: 64))"])
            #expect(badSignature.status == 401, "\(badSignature.text)")
            #expect(try await clients[0].get("/internal/templates/playground").status == 401)
            #expect(try await clients[0].request("POST", "/internal/sandboxes/\(far)/adopt").status == 401)

            // Previews: the exposure's host names the sandbox's region, and any node's preview
            // gateway hands the connection to node 3's, which checks the token itself.
            try await ExposureServer.startGuestServer(clients[0], far, port: 8000)
            let exposure = try await clients[0].post("/sandboxes/\(far)/exposures", ["port": 8000, "visibility": "private"]).object
            let exposedHost = exposure["hostname"] as? String ?? ""
            let token = String((exposure["accessUrl"] as? String ?? "").split(separator: "=").last ?? "")
            #expect(exposedHost.hasSuffix(".local-b.localhost"), "\(exposure)")
            var opened: RawHTTPClient.Response?
            for _ in 0..<100 {
                opened = try? await RawHTTPClient.request(
                    port: servers[0].previewPort, host: exposedHost, "/through-node-1", headers: ["x-omnirun-exposure-token": token],
                    timeout: .seconds(20))
                if opened?.status == 200 { break }
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(opened?.status == 200, "\(opened?.text ?? "")")
            #expect(ExposureServer.json(opened ?? .init(status: 0, headers: [], body: []))["path"] as? String == "/through-node-1")
            #expect(try await RawHTTPClient.request(port: servers[0].previewPort, host: exposedHost, "/no-token").status == 401)
            let direct = try await RawHTTPClient.request(
                port: servers[1].previewPort, host: "\(far)-8000.local-b.localhost", "/direct", headers: ["x-omnirun-exposure-token": token])
            #expect(direct.status == 200, "\(direct.text)")
            #expect(ExposureServer.json(direct)["path"] as? String == "/direct")

            // A custom template built on node 1 (local-a), used in local-b: node 3 fetches it
            // from node 1 (checksummed) before the sandbox's create, and its service runs there.
            let custom = "moved-\(UUID().uuidString.prefix(6).lowercased())"
            let built = try await CustomTemplateTests.build(
                clients[0], name: custom, dockerfile: "FROM playground\nRUN echo built-on-node-1 > /etc/built-on\n",
                settings: [
                    "startCmd": "python3 -m http.server 8000 --bind 127.0.0.1 --directory /etc",
                    "readyCmd": "curl -sf http://127.0.0.1:8000/ >/dev/null",
                ])
            #expect(built["status"] as? String == "ready", "\(built)")
            var fromTemplate: HTTPTestClient.Reply?
            for _ in 0..<20 {
                // Node 1 lists the template's snapshot at its next lease renewal.
                fromTemplate = try await clients[0].post("/sandboxes", ["template": custom, "timeout": 300, "region": "local-b"])
                if fromTemplate?.status == 201 { break }
                try await Task.sleep(for: .seconds(1))
            }
            #expect(fromTemplate?.status == 201, "\(fromTemplate?.text ?? "")")
            #expect(fromTemplate?.object["node"] as? String == "node-3")
            let customID = fromTemplate?.object["sandboxID"] as? String ?? ""
            let served = try await clients[0].post(
                "/sandboxes/\(customID)/commands", ["command": "cat /etc/built-on; curl -sf http://127.0.0.1:8000/built-on"])
            #expect(served.object["stdout"] as? String == "built-on-node-1\nbuilt-on-node-1\n", "\(served.text)")
            #expect(try await clients[1].delete("/sandboxes/\(customID)").status == 204)
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

            // A paused sandbox with a file on disk, one in memory (tmpfs) and a process: its
            // node is drained, so it moves to the other local-a node (its saved state and disk
            // copied and checked) and resumes there as it was. Creates sent to the drained
            // node land on the other one; the drain returns once the node holds nothing.
            let toPause = try await clients[0].post("/sandboxes", ["template": "playground", "timeout": 600])
            #expect(toPause.status == 201, "\(toPause.text)")
            let pausedID = toPause.object["sandboxID"] as? String ?? ""
            let pausedNode = toPause.object["node"] as? String ?? ""
            let prepared = try await clients[0].post(
                "/sandboxes/\(pausedID)/commands",
                ["command": "echo on-disk > ~/moved.txt; echo in-memory > /dev/shm/moved.txt; sync; setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $! > ~/sleeper"])
            #expect(prepared.object["exit_code"] as? Int == 0, "\(prepared.text)")
            let pause = try await clients[1].post("/sandboxes/\(pausedID)/pause", [:])
            #expect(pause.status == 200, "\(pause.text)")
            let drained = pausedNode == "node-1" ? 0 : 1
            let other = "node-\(2 - drained)"
            let drain = try Self.startTool(["node", "drain", pausedNode, "--database", database, "--timeout", "600"])
            var waited = 0
            while (try await Self.nodes(database)).first(where: { $0["id"] as? String == pausedNode })?["state"] as? String != "draining",
                waited < 40
            {
                try await Task.sleep(for: .milliseconds(250))
                waited += 1
            }
            let elsewhere = try await clients[drained].post("/sandboxes", ["template": "playground", "timeout": 300])
            #expect(elsewhere.status == 201, "\(elsewhere.text)")
            #expect(elsewhere.object["node"] as? String == other)
            let moveStarted = Date()
            var movedTo = pausedNode
            while Date().timeIntervalSince(moveStarted) < 300 {
                movedTo = try await clients[drained].get("/sandboxes/\(pausedID)").object["node"] as? String ?? movedTo
                if movedTo == other { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(movedTo == other, "the paused sandbox stayed on \(movedTo)")
            print("[figures] multi-node: a paused sandbox moved off a draining node in \(String(format: "%.1f", Date().timeIntervalSince(moveStarted))) s")
            if keptNode == pausedNode {
                #expect(drain.process.isRunning, "the drain waits for the node's running sandbox")
                #expect(try await clients[1 - drained].delete("/sandboxes/\(kept)").status == 204)
            }
            drain.process.waitUntilExit()
            #expect(drain.process.terminationStatus == 0)
            #expect(drain.output().contains("\(pausedNode) is drained"), "\(drain.output())")
            let resumed = try await clients[drained].post("/sandboxes/\(pausedID)/resume", [:])
            #expect(resumed.status == 200, "\(resumed.text)")
            let after = try await clients[drained].post(
                "/sandboxes/\(pausedID)/commands",
                ["command": "cat ~/moved.txt /dev/shm/moved.txt; kill -0 $(cat ~/sleeper) && echo process-alive"])
            #expect(after.object["stdout"] as? String == "on-disk\nin-memory\nprocess-alive\n", "\(after.text)")
            #expect(try await clients[drained].get("/sandboxes/\(pausedID)").object["node"] as? String == other)
            #expect(try await clients[0].delete("/sandboxes/\(pausedID)").status == 204)
            if keptNode != pausedNode { #expect(try await clients[0].delete("/sandboxes/\(kept)").status == 204) }
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
