import Foundation
import Testing
import TestSupport

/// One server for the API tests; each test uses its own account.
enum SharedServer {
    static let server = Task<TestServer, any Error> {
        try await TestServer.start(name: "api", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
    }

    static func client(_ label: String) async throws -> (TestServer, HTTPTestClient) {
        let server = try await server.value
        let key = try server.createKey(email: "\(label)-\(UUID().uuidString.prefix(8))@test.local")
        #expect(key.hasPrefix("omr_"))
        return (server, server.client(key: key))
    }
}

func createSandbox(_ client: HTTPTestClient, _ body: [String: Any] = ["template": "playground", "timeout": 300]) async throws -> String {
    let data = try JSONSerialization.data(withJSONObject: body)
    let reply = try await CreateGate.shared.run {
        try await client.request("POST", "/sandboxes", body: data, contentType: "application/json")
    }
    #expect(reply.status == 201, "\(reply.text)")
    guard let id = reply.object["sandboxID"] as? String else { throw HTTPTestError("no sandboxID in \(reply.text)") }
    return id
}

@Suite("REST API over a real server", .timeLimit(.minutes(10)))
struct APITests {
    @Test func quickStartFromTheDocs() async throws {
        let (_, client) = try await SharedServer.client("quick")
        let created = try await client.post("/sandboxes", ["template": "playground", "timeout": 300])
        #expect(created.status == 201)
        #expect(created.header("Content-Type")?.hasPrefix("application/json") == true)
        let id = created.object["sandboxID"] as? String ?? ""
        #expect(id.range(of: "^sb_[a-z0-9]{8}$", options: .regularExpression) != nil)
        let run = try await client.post("/sandboxes/\(id)/commands", ["command": "python3 -c 'print(6*7)'"])
        #expect(run.object["stdout"] as? String == "42\n")
        #expect(run.object["exit_code"] as? Int == 0)
        let write = try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/data.csv", "content": "a,b\n1,2\n"])
        #expect(write.status == 200)
        let read = try await client.get("/sandboxes/\(id)/files?path=%2Ftmp%2Fdata.csv")
        #expect(read.object["content"] as? String == "a,b\n1,2\n")
        let info = try await client.get("/sandboxes/\(id)")
        #expect(info.object["state"] as? String == "running")
        #expect(info.object["templateID"] as? String == "playground")
        let killed = try await client.delete("/sandboxes/\(id)")
        #expect(killed.status == 204)
        let gone = try await client.get("/sandboxes/\(id)")
        #expect(gone.status == 404)
        #expect(gone.object["error"] as? String == "not_found")
        let history = try await client.get("/sandboxes/history")
        #expect(history.array.contains { $0["sandboxID"] as? String == id && $0["endReason"] as? String == "killed" })
    }

    @Test func defaultTemplateNamesAndUnknownTemplate() async throws {
        let (_, client) = try await SharedServer.client("templates")
        let id = try await createSandbox(client, ["template": "python-3.11", "timeout": 60])
        let version = try await client.post("/sandboxes/\(id)/commands", ["command": "python3 --version"])
        #expect((version.object["stdout"] as? String)?.hasPrefix("Python 3.11") == true)
        _ = try await client.delete("/sandboxes/\(id)")
        let unknown = try await client.post("/sandboxes", ["template": "no-such-template"])
        #expect(unknown.status == 404)
        #expect((unknown.object["message"] as? String)?.contains("playground") == true)
    }

    @Test func commandsForegroundBackgroundStdinStreamKill() async throws {
        let (_, client) = try await SharedServer.client("commands")
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let fail = try await client.post("/sandboxes/\(id)/commands", ["command": "echo out; echo err >&2; exit 13"])
        #expect(fail.object["stdout"] as? String == "out\n")
        #expect(fail.object["stderr"] as? String == "err\n")
        #expect(fail.object["exit_code"] as? Int == 13)
        let env = try await client.post(
            "/sandboxes/\(id)/commands", ["command": "echo $GREETING from $(pwd) as $(whoami)", "envs": ["GREETING": "hi"], "cwd": "/tmp", "user": "root"])
        #expect(env.object["stdout"] as? String == "hi from /tmp as root\n")
        let slow = try await client.post("/sandboxes/\(id)/commands", ["command": "sleep 5", "timeout": 1])
        #expect(slow.object["exit_code"] as? Int == 124)

        // Background with stdin, then wait by polling as the SDK's wait() does.
        let bg = try await client.post("/sandboxes/\(id)/commands", ["command": "read line; echo got:$line", "background": true])
        let pid = bg.object["pid"] as? Int ?? 0
        #expect(pid > 0)
        let stdin = try await client.post("/sandboxes/\(id)/commands/\(pid)/stdin", ["data": "hello\n"])
        #expect(stdin.status == 200)
        var finished: [String: Any] = [:]
        for _ in 0..<100 {
            finished = try await client.get("/sandboxes/\(id)/commands/\(pid)").object
            if finished["running"] as? Bool == false { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(finished["stdout"] as? String == "got:hello\n")
        #expect(finished["exit_code"] as? Int == 0)

        // SSE replay: the command finishes before the stream opens and still delivers everything.
        let quick = try await client.post("/sandboxes/\(id)/commands", ["command": "for i in 1 2 3; do echo stream-$i; done; exit 4", "background": true])
        let quickPID = quick.object["pid"] as? Int ?? 0
        try await Task.sleep(for: .seconds(1))
        let events = try await client.events("/sandboxes/\(id)/commands/\(quickPID)/stream")
        let stdout = events.filter { $0["type"] as? String == "stdout" }.compactMap { $0["data"] as? String }.joined()
        #expect(stdout == "stream-1\nstream-2\nstream-3\n")
        #expect(events.last?["type"] as? String == "exit")
        #expect(events.last?["exit_code"] as? Int == 4)

        // Live stream of a running command, then kill.
        let long = try await client.post("/sandboxes/\(id)/commands", ["command": "while true; do echo tick; sleep 0.2; done", "background": true])
        let longPID = long.object["pid"] as? Int ?? 0
        let ticks = try await client.events("/sandboxes/\(id)/commands/\(longPID)/stream") { events in
            events.filter { $0["type"] as? String == "stdout" }.count >= 2
        }
        #expect(ticks.count >= 2)
        let list = try await client.get("/sandboxes/\(id)/commands")
        #expect(list.array.contains { $0["pid"] as? Int == longPID && $0["running"] as? Bool == true })
        #expect(try await client.delete("/sandboxes/\(id)/commands/\(longPID)").status == 204)
        try await Task.sleep(for: .milliseconds(800))
        let after = try await client.get("/sandboxes/\(id)/commands/\(longPID)")
        #expect(after.object["running"] as? Bool == false)
        #expect(try await client.get("/sandboxes/\(id)/commands/999999").status == 404)

        let code = try await client.post("/sandboxes/\(id)/code", ["code": "console.log([1,2,3].map(x => x * 2).join(','))", "language": "javascript"])
        #expect(code.object["stdout"] as? String == "2,4,6\n")
        let bash = try await client.post("/sandboxes/\(id)/code", ["code": "echo $((2**10))", "language": "bash"])
        #expect(bash.object["stdout"] as? String == "1024\n")
        let py = try await client.post("/sandboxes/\(id)/code", ["code": "raise SystemExit(5)"])
        #expect(py.object["exit_code"] as? Int == 5)
    }

    @Test func filesEveryRoute() async throws {
        let (_, client) = try await SharedServer.client("files")
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let base = "/sandboxes/\(id)/files"
        // Multipart upload of 5 MiB of binary, then raw download.
        var payload = Data(count: 5 << 20)
        payload.withUnsafeMutableBytes { raw in
            for i in 0..<raw.count { raw[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
        }
        let boundary = "----omnirun\(UUID().uuidString)"
        var form = Data()
        form.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n/tmp/up/blob.bin\r\n".utf8))
        form.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8))
        form.append(payload)
        form.append(Data("\r\n--\(boundary)--\r\n".utf8))
        let upload = try await client.request("POST", base + "/upload", body: form, contentType: "multipart/form-data; boundary=\(boundary)")
        #expect(upload.status == 200, "\(upload.text)")
        #expect(upload.object["size"] as? Int == 5 << 20)
        let download = try await client.get(base + "/download?path=%2Ftmp%2Fup%2Fblob.bin")
        #expect(download.status == 200)
        #expect(download.body == payload)

        let batch = try await client.request("POST", base + "/batch", json: [["path": "/tmp/b/1.txt", "content": "one"], ["path": "/tmp/b/2.txt", "content": "two"]])
        #expect(batch.array.count == 2)
        #expect(batch.array.first?["is_dir"] as? Bool == false)
        #expect(try await client.post(base + "/mkdir", ["path": "/tmp/b/new_dir/sub"]).status == 200)
        let list = try await client.get(base + "/list?path=%2Ftmp%2Fb")
        #expect(Set(list.array.compactMap { $0["name"] as? String }) == ["1.txt", "2.txt", "new_dir"])
        let deep = try await client.get(base + "/list?path=%2Ftmp%2Fb&depth=2")
        #expect(deep.array.contains { $0["path"] as? String == "/tmp/b/new_dir/sub" && $0["is_dir"] as? Bool == true })
        #expect(try await client.get(base + "/exists?path=%2Ftmp%2Fb%2F1.txt").object["exists"] as? Bool == true)
        let missing = try await client.get(base + "/exists?path=%2Fnope")
        #expect(missing.status == 200)
        #expect(missing.object["exists"] as? Bool == false)
        let info = try await client.get(base + "/info?path=%2Ftmp%2Fb%2F2.txt")
        #expect(info.object["size"] as? Int == 3)
        let renamed = try await client.post(base + "/rename", ["oldPath": "/tmp/b/2.txt", "newPath": "/tmp/b/three.txt"])
        #expect(renamed.object["path"] as? String == "/tmp/b/three.txt")
        #expect(try await client.delete(base + "?path=%2Ftmp%2Fb%2F1.txt").status == 204)
        #expect(try await client.get(base + "?path=%2Ftmp%2Fb%2F1.txt").status == 404)
        let spaced = try await client.post(base, ["path": "/tmp/with space/a+b.txt", "content": "x"])
        #expect(spaced.status == 200)
        // URLSearchParams encodes a space as '+', and '+' as %2B.
        let plus = try await client.get(base + "?path=/tmp/with+space/a%2Bb.txt")
        #expect(plus.object["content"] as? String == "x")

        // Watch: events for a write and a removal.
        _ = try await client.post(base + "/mkdir", ["path": "/tmp/w"])
        let watcher = Task {
            try await client.events(base + "/watch?path=%2Ftmp%2Fw&recursive=true", timeout: 30) { events in
                events.contains { $0["type"] as? String == "remove" }
            }.map { $0.compactMapValues { $0 as? String } }
        }
        try await Task.sleep(for: .seconds(1))
        _ = try await client.post(base, ["path": "/tmp/w/f.txt", "content": "1"])
        _ = try await client.delete(base + "?path=%2Ftmp%2Fw%2Ff.txt")
        let seen = try await watcher.value
        #expect(seen.contains { $0["type"] == "create" && $0["name"] == "f.txt" })
        #expect(seen.contains { $0["type"] == "remove" })
    }

    @Test func signedURLsAreScopedAndExpire() async throws {
        let (server, client) = try await SharedServer.client("signed")
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        _ = try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/s.txt", "content": "signed!"])
        let signed = try await client.post("/sandboxes/\(id)/files/download-url", ["path": "/tmp/s.txt"])
        let url = signed.object["url"] as? String ?? ""
        #expect(url.hasPrefix(server.baseURL))
        let anonymous = HTTPTestClient(baseURL: server.baseURL, apiKey: nil)
        let fetched = try await anonymous.request("GET", url)
        #expect(fetched.text == "signed!")
        // Another path, another sandbox, another method: refused.
        let otherPath = url.replacingOccurrences(of: "s.txt", with: "t.txt")
        #expect(try await anonymous.request("GET", otherPath).status == 403)
        #expect(try await anonymous.request("DELETE", url).status == 403)
        let upload = try await client.post("/sandboxes/\(id)/files/upload-url", ["path": "/tmp/put.txt"])
        let uploadURL = upload.object["url"] as? String ?? ""
        let put = try await anonymous.request("PUT", uploadURL, body: Data("put-body".utf8), contentType: "application/octet-stream")
        #expect(put.status == 200, "\(put.text)")
        #expect(try await client.get("/sandboxes/\(id)/files?path=%2Ftmp%2Fput.txt").object["content"] as? String == "put-body")
        #expect(try await anonymous.request("GET", uploadURL).status != 200)
        let short = try await client.post("/sandboxes/\(id)/files/download-url", ["path": "/tmp/s.txt", "expiresIn": 1])
        try await Task.sleep(for: .seconds(2.2))
        #expect(try await anonymous.request("GET", short.object["url"] as? String ?? "").status == 403)
    }

    @Test func ptyByPolling() async throws {
        let (_, client) = try await SharedServer.client("pty")
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let created = try await client.post("/sandboxes/\(id)/pty", ["cols": 100, "rows": 30])
        let pid = created.object["pid"] as? Int ?? 0
        #expect(pid > 0)
        _ = try await client.post("/sandboxes/\(id)/pty/\(pid)/input", ["data": "echo pty-ok; stty size\n"])
        var screen = ""
        for _ in 0..<100 where !screen.contains("30 100") {
            screen += try await client.get("/sandboxes/\(id)/pty/\(pid)/read").object["data"] as? String ?? ""
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(screen.contains("pty-ok"))
        #expect(screen.contains("30 100"))
        #expect(try await client.post("/sandboxes/\(id)/pty/\(pid)/resize", ["cols": 50, "rows": 10]).status == 200)
        let empty = try await client.get("/sandboxes/\(id)/pty/\(pid)/read")
        #expect(empty.status == 200)
        let sessions = try await client.get("/sandboxes/\(id)/pty")
        #expect(sessions.array.contains { $0["pid"] as? Int == pid && $0["running"] as? Bool == true })
        #expect(try await client.delete("/sandboxes/\(id)/pty/\(pid)").status == 204)
    }

    @Test func fourthSandboxIs429AndNoneIsCreated() async throws {
        let (_, client) = try await SharedServer.client("limit")
        // Racing creates never overshoot the limit.
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<5 { group.addTask { try await client.post("/sandboxes", ["template": "playground"]).status } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.filter { $0 == 201 }.count == 3)
        #expect(statuses.filter { $0 == 429 }.count == 2)
        let fourth = try await client.post("/sandboxes", ["template": "playground"])
        #expect(fourth.status == 429)
        #expect(fourth.object["error"] as? String == "concurrent sandbox limit reached")
        let running = try await client.get("/sandboxes?limit=100")
        #expect(running.array.count == 3)
        // Pagination: two pages of 2 and 1 with x-next-token.
        let first = try await client.get("/sandboxes?limit=2")
        #expect(first.array.count == 2)
        let token = first.header("x-next-token") ?? ""
        #expect(!token.isEmpty)
        let second = try await client.get("/sandboxes?limit=2&next_token=\(token)")
        #expect(second.array.count == 1)
        #expect((second.header("x-next-token") ?? "").isEmpty)
        for sandbox in running.array { _ = try await client.delete("/sandboxes/\(sandbox["sandboxID"] as? String ?? "")") }
        #expect(try await client.get("/sandboxes").array.isEmpty)
    }

    @Test func timeoutExpiryAndMetadataFilter() async throws {
        let (_, client) = try await SharedServer.client("timeout")
        let id = try await createSandbox(client, ["template": "playground", "timeout": 8, "metadata": ["suite": "hosted-examples", "scenario": "t"]])
        let filtered = try await client.get("/sandboxes?limit=100&metadata=suite%3Ahosted-examples")
        #expect(filtered.array.contains { $0["sandboxID"] as? String == id })
        let none = try await client.get("/sandboxes?metadata=suite%3Aother")
        #expect(none.array.isEmpty)
        try await Task.sleep(for: .seconds(11))
        #expect(try await client.get("/sandboxes/\(id)").status == 404)
        let history = try await client.get("/sandboxes/history")
        #expect(history.array.contains { $0["sandboxID"] as? String == id && $0["endReason"] as? String == "timeout" })
        // Extending the timeout keeps a sandbox alive.
        let kept = try await createSandbox(client, ["template": "playground", "timeout": 5])
        #expect(try await client.post("/sandboxes/\(kept)/timeout", ["timeout": 60]).status == 200)
        try await Task.sleep(for: .seconds(7))
        #expect(try await client.get("/sandboxes/\(kept)").status == 200)
        _ = try await client.delete("/sandboxes/\(kept)")
    }

    @Test func anotherAccountsSandboxIs404OnEveryRoute() async throws {
        let (server, owner) = try await SharedServer.client("owner")
        let id = try await createSandbox(owner)
        defer { Task { _ = try? await owner.delete("/sandboxes/\(id)") } }
        let stranger = server.client(key: try server.createKey(email: "stranger-\(UUID().uuidString.prefix(6))@test.local"))
        let document = try await owner.get("/openapi.json").object
        let paths = document["paths"] as? [String: [String: Any]] ?? [:]
        var checked = 0
        for (path, operations) in paths where path.contains("{id}") {
            let concrete = path.replacingOccurrences(of: "{id}", with: id).replacingOccurrences(of: "{pid}", with: "1")
                .replacingOccurrences(of: "{ctx}", with: "c").replacingOccurrences(of: "{exp}", with: "e")
            for method in operations.keys {
                let reply = try await stranger.request(
                    method.uppercased(), concrete + "?path=%2Ftmp", json: method == "get" || method == "delete" ? nil : [:])
                #expect(reply.status == 404, "\(method.uppercased()) \(path) answered \(reply.status) \(reply.text)")
                checked += 1
            }
        }
        #expect(checked > 40)
        #expect(try await owner.get("/sandboxes/\(id)").status == 200)
    }

    @Test func badInputGetsClearJSONErrors() async throws {
        let (server, client) = try await SharedServer.client("errors")
        let malformed = try await client.request("POST", "/sandboxes", body: Data("{not json".utf8), contentType: "application/json")
        #expect(malformed.status == 400)
        #expect(malformed.object["error"] as? String == "invalid_argument")
        #expect(try await client.post("/sandboxes", ["template": "playground", "timeout": -5]).status == 400)
        #expect(try await client.post("/sandboxes", ["template": 12]).status == 400)
        let huge = try await client.request("POST", "/sandboxes", body: Data(repeating: 32, count: 20 << 20), contentType: "application/json")
        #expect(huge.status == 413)
        let noKey = HTTPTestClient(baseURL: server.baseURL, apiKey: "omr_wrong")
        #expect(try await noKey.get("/sandboxes").status == 401)
        let bearer = try await HTTPTestClient(baseURL: server.baseURL, apiKey: nil)
            .request("GET", "/sandboxes", headers: ["Authorization": "Bearer \(client.apiKey ?? "")"])
        #expect(bearer.status == 200)
        #expect(try await client.get("/sandboxes/sb_00000000").status == 404)
        #expect(try await client.get("/sandboxes/not-an-id").status == 404)
        // Network policies are checked before anything starts (docs/networking.md).
        let contradictory = try await client.post(
            "/sandboxes", ["template": "playground", "internet": false, "network": ["allowIPs": ["10.9.9.9"]]])
        #expect(contradictory.status == 400 && contradictory.object["error"] as? String == "invalid_argument")
        let badPolicy = try await client.post("/sandboxes", ["template": "playground", "network": ["denyIPs": ["10.0.0.0/33"]]])
        #expect(badPolicy.status == 400, "\(badPolicy.text)")
        let status = try await HTTPTestClient(baseURL: server.baseURL, apiKey: nil).get("/status")
        #expect(status.status == 200)
        #expect((status.object["templates"] as? [String])?.contains("python-3.11") == true)
        #expect(status.object["max_sandboxes"] as? Int != nil)
    }

    @Test func everyDocumentedRouteIsServed() async throws {
        let (_, client) = try await SharedServer.client("openapi")
        let document = try await client.get("/openapi.json").object
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = document["paths"] as? [String: [String: Any]] ?? [:]
        #expect(paths.count >= 30)
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        for (path, operations) in paths.sorted(by: { $0.key < $1.key }) {
            let concrete = path.replacingOccurrences(of: "{id}", with: id).replacingOccurrences(of: "{pid}", with: "999999")
                .replacingOccurrences(of: "{ctx}", with: "c").replacingOccurrences(of: "{exp}", with: "e")
                .replacingOccurrences(of: "{tokenID}", with: "key_none").replacingOccurrences(of: "{webhook}", with: "wh_none").replacingOccurrences(of: "{key}", with: "NONE")
            for method in operations.keys {
                if path == "/sandboxes/{id}" && method == "delete" { continue }
                // A fork with a count of 0 is refused (400): the route answers without making
                // copies; a context in a language nobody has is refused before a kernel starts
                // (one can take minutes on a loaded machine).
                var body: [String: Any]? = method == "get" || method == "delete" ? nil : [:]
                if path.hasSuffix("/fork") { body = ["count": 0] }
                if path == "/sandboxes/{id}/contexts" && method == "post" { body = ["language": "no-such-language"] }
                let reply: HTTPTestClient.Reply
                do {
                    reply = try await client.request(
                        method.uppercased(), concrete + (concrete.contains("?") ? "" : "?path=%2Fnope"), json: body,
                        // The first call on contexts starts the sandbox's kernel service (Jupyter
                        // under emulation: minutes when the suite's load is high).
                        timeout: path.contains("/contexts") ? 400 : 120)
                } catch {
                    Issue.record("\(method) \(path): \(error)")
                    continue
                }
                // A route the router lacks answers the bare "not found"; a served one says more.
                #expect(!(reply.status == 404 && reply.object["message"] as? String == "not found"), "\(method) \(path) is not routed")
                #expect(reply.status < 500 || reply.status == 501, "\(method) \(path) → \(reply.status) \(reply.text)")
                let text = path == "/metrics" && reply.header("Content-Type")?.hasPrefix("text/plain") == true
                #expect(reply.header("Content-Type")?.contains("json") == true || reply.status == 204 || text, "\(method) \(path)")
            }
        }
    }
}
