import Foundation
import Testing
import TestSupport

/// Fork over a real server: copies of a running sandbox with its processes, memory,
/// contexts and files, diverging from there.
@Suite("Fork", .serialized, .timeLimit(.minutes(20)))
struct ForkTests {
    @Test func threeCopiesStartFromTheSandboxAndDiverge() async throws {
        let server = try await TestServer.start(
            name: "fork", environment: ["OMNIRUN_IDLE_TIMEOUT": "600", "OMNIRUN_CONCURRENT_LIMIT": "4"])
        do {
            let client = server.client()
            let parent = try await createSandbox(client, ["template": "playground", "timeout": 600, "metadata": ["task": "fork"]])
            // A process counting in its own memory, a file, and a variable in a context.
            // (The counter file is replaced whole, so a read never sees it half written.)
            let loop = try await client.post(
                "/sandboxes/\(parent)/commands",
                ["command": "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter.new; mv /tmp/counter.new /tmp/counter; sleep 0.2; done", "background": true, "timeout": 0])
            let pid = loop.object["pid"] as? Int ?? 0
            #expect(pid > 0, "\(loop.text)")
            let wrote = try await client.post("/sandboxes/\(parent)/files", ["path": "/home/user/state.txt", "content": "before the fork"])
            #expect(wrote.status == 200, "\(wrote.text)")
            let context = try await client.request("POST", "/sandboxes/\(parent)/contexts", json: ["language": "python"], timeout: 420)
            let ctx = context.object["id"] as? String ?? ""
            #expect(!ctx.isEmpty, "\(context.text)")
            let set = try await client.post("/sandboxes/\(parent)/contexts/\(ctx)/execute", ["code": "secret = 'made before the fork'"])
            #expect(set.status == 200, "\(set.text)")
            try await Task.sleep(for: .seconds(1))

            let forked = try await client.request("POST", "/sandboxes/\(parent)/fork", json: ["count": 3], timeout: 420)
            #expect(forked.status == 201, "\(forked.text)")
            let copies = (forked.object["sandboxes"] as? [[String: Any]] ?? []).compactMap { $0["sandboxID"] as? String }
            try #require(copies.count == 3 && Set(copies).count == 3 && !copies.contains(parent), "\(forked.text)")
            for info in forked.object["sandboxes"] as? [[String: Any]] ?? [] {
                #expect(info["state"] as? String == "running" && info["templateID"] as? String == "playground", "\(info)")
                #expect((info["metadata"] as? [String: String])?["task"] == "fork", "\(info)")
            }
            // Over the account's limit of 4: parent + 3 copies run.
            let over = try await client.post("/sandboxes/\(parent)/fork", ["count": 1])
            #expect(over.status == 429, "\(over.text)")

            var identities: Set<String> = []
            for id in [parent] + copies {
                // The loop goes on counting in every copy, from where it was.
                let first = Int(try await read(client, id, "/tmp/counter")) ?? 0
                try await Task.sleep(for: .seconds(1))
                let second = Int(try await read(client, id, "/tmp/counter")) ?? 0
                #expect(first > 3 && second > first, "\(id): counter \(first) then \(second)")
                let process = try await client.get("/sandboxes/\(id)/commands/\(pid)")
                #expect(process.object["running"] as? Bool == true, "\(id): \(process.text)")
                #expect(try await read(client, id, "/home/user/state.txt") == "before the fork")
                let secret = try await client.post("/sandboxes/\(id)/contexts/\(ctx)/execute", ["code": "secret"])
                #expect(texts(secret) == ["'made before the fork'"], "\(id): \(secret.text)")
                let who = try await client.post(
                    "/sandboxes/\(id)/commands",
                    ["command": "echo $(hostname) $(cat /etc/machine-id) $(python3 -c 'import secrets; print(secrets.token_hex(16))') $OMNIRUN_SANDBOX_ID"])
                let fields = (who.object["stdout"] as? String ?? "").split(separator: " ").map(String.init)
                #expect(fields.count == 4 && fields[3].trimmingCharacters(in: .whitespacesAndNewlines) == id, "\(who.text)")
                identities.insert(who.object["stdout"] as? String ?? "")
                // Writes diverge.
                let mine = try await client.post("/sandboxes/\(id)/files", ["path": "/home/user/state.txt", "content": "written by \(id)"])
                #expect(mine.status == 200)
                #expect(try await client.post("/sandboxes/\(id)/contexts/\(ctx)/execute", ["code": "secret = '\(id)'"]).status == 200)
            }
            #expect(identities.count == 4, "hostname, machine id, randomness and id differ: \(identities)")
            for id in [parent] + copies {
                #expect(try await read(client, id, "/home/user/state.txt") == "written by \(id)")
                let secret = try await client.post("/sandboxes/\(id)/contexts/\(ctx)/execute", ["code": "secret"])
                #expect(texts(secret) == ["'\(id)'"], "\(id): \(secret.text)")
            }

            // The copies do not need their origin.
            #expect(try await client.delete("/sandboxes/\(parent)").status == 204)
            for id in copies {
                let check = try await client.post(
                    "/sandboxes/\(id)/commands", ["command": "cat /home/user/state.txt; echo; sha256sum /usr/bin/python3 | cut -c1-8; sync"])
                #expect(check.object["exit_code"] as? Int == 0 && (check.object["stdout"] as? String ?? "").hasPrefix("written by \(id)\n"), "\(check.text)")
            }
            // A copy can be forked again.
            #expect(try await client.delete("/sandboxes/\(copies[2])").status == 204)
            let again = try await client.request("POST", "/sandboxes/\(copies[0])/fork", json: [:], timeout: 420)
            let grandchild = ((again.object["sandboxes"] as? [[String: Any]])?.first?["sandboxID"] as? String) ?? ""
            #expect(again.status == 201 && !grandchild.isEmpty, "\(again.text)")
            #expect(try await read(client, grandchild, "/home/user/state.txt") == "written by \(copies[0])")

            // Bad input.
            #expect(try await client.post("/sandboxes/\(copies[0])/fork", ["count": 0]).status == 400)
            #expect(try await client.post("/sandboxes/\(copies[0])/fork", ["count": 11]).status == 400)
            #expect(try await client.post("/sandboxes/\(copies[0])/fork", ["count": "two"]).status == 400)
            #expect(try await client.post("/sandboxes/sb_00000000/fork", ["count": 1]).status == 404)
            #expect(try await client.post("/sandboxes/\(copies[1])/pause").status == 200)
            #expect(try await client.post("/sandboxes/\(copies[1])/fork", ["count": 1]).status == 409)

            for id in [copies[0], copies[1], grandchild] {
                #expect(try await client.delete("/sandboxes/\(id)").status == 204)
            }
            for id in [parent] + copies + [grandchild] {
                #expect(hostProcesses(matching: server.dataDirectory + "/sandboxes/\(id)").isEmpty, "\(id) left a VMM")
                #expect(!FileManager.default.fileExists(atPath: server.dataDirectory + "/sandboxes/\(id)"), "\(id) left its folder")
            }
        } catch {
            Issue.record("server log: \(server.log().suffix(6000))")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    /// An e2ee sandbox's copies never share its channel key: a fork without the client's
    /// key is refused (nothing is copied); with it, each copy answers with its own server
    /// key, and an envelope sealed for one sandbox does not open on another.
    @Test func forksOfAnE2EESandboxGetKeysOfTheirOwn() async throws {
        let server = try await TestServer.start(
            name: "fork-e2ee", environment: ["OMNIRUN_IDLE_TIMEOUT": "600", "OMNIRUN_CONCURRENT_LIMIT": "3"])
        do {
            let created = try await gatedE2EEClient("create", server.baseURL, server.ownerKey, "playground")
            let id = created["sandboxID"] as? String ?? ""
            let serverKey = created["serverPublicKey"] as? String ?? ""
            let result = try await e2eeClient(
                "fork", server.baseURL, server.ownerKey, id, created["clientPrivate"] as? String ?? "", serverKey)
            let refused = result["withoutKey"] as? [String: Any] ?? [:]
            #expect(refused["status"] as? Int == 400 && (refused["message"] as? String)?.contains("clientPublicKey") == true, "\(refused)")
            #expect(result["forkStatus"] as? Int == 201, "\(result)")
            let copies = result["copies"] as? [String] ?? []
            let keys = (result["serverKeys"] as? [Any] ?? []).compactMap { $0 as? String }
            #expect(copies.count == 2 && keys.count == 2, "\(result)")
            #expect(Set(keys + [serverKey]).count == 3, "every copy has a key of its own")
            for run in result["runs"] as? [[String: Any]] ?? [] {
                #expect(run["stdout"] as? String == "copy-ok\n", "\(run)")
                for name in ["parentKeyOnCopy", "copyKeyOnParent"] {
                    let answer = run[name] as? [String: Any] ?? [:]
                    #expect(answer["status"] as? Int == 400, "\(name): \(answer)")
                    #expect((answer["message"] as? String)?.contains("does not authenticate") == true, "\(name): \(answer)")
                }
            }
            #expect(result["parentAfter"] as? String == "parent-ok\n", "no crossed envelope ran")
            #expect(result["kills"] as? [Int] == [204, 204])
            // Each copy's key is stored (sealed) and goes with its copy.
            #expect(try await E2EETransportTests.storedKeys(server) == [id])
            #expect(try await server.client().delete("/sandboxes/\(id)").status == 204)
        } catch {
            Issue.record("server log: \(server.log().suffix(6000))")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    func read(_ client: HTTPTestClient, _ id: String, _ path: String) async throws -> String {
        let reply = try await client.get("/sandboxes/\(id)/files?path=\(path)")
        return (reply.object["content"] as? String ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func texts(_ reply: HTTPTestClient.Reply) -> [String] {
        (reply.object["results"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
    }
}
