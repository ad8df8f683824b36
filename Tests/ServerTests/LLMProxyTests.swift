import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in upstream speaking the three protocols on 127.0.0.1, and servers whose LLM
/// proxy forwards to it. The clients in these tests are the official `openai` and
/// `anthropic` packages.
enum LLMHarness {
    struct Setup: Sendable {
        let upstream: HelperProcess
        let server: TestServer
        /// Three requests a minute, and only `test/*` routed, in chat completions only (from a config file).
        let strict: TestServer
        let requestLog: String
        let openAIPython: String
        let anthropicPython: String
    }

    static let upstreamKey = "upstream-secret-\(getpid())"

    static let shared = Task<Setup, any Error> {
        let directory = TestRuntime.dataDirectory + "/llm-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let python = try Python.interpreter(importing: "json")
        let openAIPython = try Python.interpreter(importing: "openai")
        let anthropicPython = try Python.interpreter(importing: "anthropic")
        let log = directory + "/requests.jsonl"
        let upstream = try await HelperProcess.start(
            python, [Python.script("fake-llm-upstream.py"), "--key", upstreamKey, "--log", log, "--word-delay", "0.4"],
            logPath: directory + "/upstream.log")
        let base = "http://127.0.0.1:\(upstream.port)/v1"
        let server = try await TestServer.start(
            name: "llm",
            environment: [
                "OMNIRUN_LLM_UPSTREAM_URL": base, "OMNIRUN_LLM_UPSTREAM_KEY": upstreamKey, "OMNIRUN_LLM_TIMEOUT": "3",
                "OMNIRUN_LLM_UPSTREAM_PROTOCOLS": "chat,messages,responses",
                "OMNIRUN_LLM_RATE_LIMIT": "1000", "OMNIRUN_IDLE_TIMEOUT": "600",
            ], logLevel: "info")
        let config = directory + "/llm.json"
        let configuration: [String: Any] = [
            "upstreams": [["name": "fake", "baseURL": base, "apiKeyEnv": "FAKE_UPSTREAM_KEY", "models": ["test/*"]]],
            "requestsPerMinute": 3, "spendCapCents": 100,
            "prices": ["test/*": ["input": 1000, "output": 1000]],
        ]
        try JSONSerialization.data(withJSONObject: configuration).write(to: URL(fileURLWithPath: config))
        let strict = try await TestServer.start(
            name: "llm2", environment: ["OMNIRUN_LLM_CONFIG": config, "FAKE_UPSTREAM_KEY": upstreamKey], logLevel: "info")
        return Setup(
            upstream: upstream, server: server, strict: strict, requestLog: log, openAIPython: openAIPython,
            anthropicPython: anthropicPython)
    }

    /// Runs scripts/testdata/openai-client.py as a new account of `server`; returns its JSON.
    static func openAI(_ server: TestServer, key: String, _ arguments: String...) async throws -> [String: Any] {
        let setup = try await shared.value
        let output = try await Python.run(
            setup.openAIPython, Python.script("openai-client.py"), arguments,
            environment: ["OPENAI_BASE_URL": server.baseURL + "/llm/v1", "OPENAI_API_KEY": key])
        guard let object = (try? JSONSerialization.jsonObject(with: Data(output.utf8))) as? [String: Any] else {
            throw TestSetupError("openai-client.py printed \(output)")
        }
        return object
    }

    /// Runs scripts/testdata/anthropic-client.py as a new account of `server`; returns its JSON.
    static func anthropic(_ server: TestServer, key: String, _ arguments: String...) async throws -> [String: Any] {
        let setup = try await shared.value
        let output = try await Python.run(
            setup.anthropicPython, Python.script("anthropic-client.py"), arguments,
            environment: ["ANTHROPIC_BASE_URL": server.baseURL + "/llm", "ANTHROPIC_API_KEY": key])
        guard let object = (try? JSONSerialization.jsonObject(with: Data(output.utf8))) as? [String: Any] else {
            throw TestSetupError("anthropic-client.py printed \(output)")
        }
        return object
    }

    /// The stand-in's record of the requests it got (JSON lines), newest last.
    /// Seconds between the first and the last piece of a streamed answer, as the client saw them.
    static func spread(_ result: [String: Any]) -> Double {
        let times = result["times"] as? [Double] ?? []
        return (times.last ?? 0) - (times.first ?? 0)
    }

    /// Streams once, and once more if the client saw the pieces within `minimum` seconds of
    /// each other (a client starved for the whole stream reads them at once; a proxy that
    /// buffers delivers them at once every time). Returns the last result and how many
    /// streams were made (each is charged).
    static func stream(spreadOver minimum: Double, _ run: () async throws -> [String: Any]) async throws -> ([String: Any], Int) {
        var result = try await run()
        guard spread(result) <= minimum else { return (result, 1) }
        result = try await run()
        return (result, 2)
    }

    static func upstreamRequests() async throws -> [[String: Any]] {
        let text = try String(contentsOfFile: try await shared.value.requestLog, encoding: .utf8)
        return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
    }

    static func account(_ server: TestServer, _ label: String) throws -> String {
        try server.createKey(email: "\(label)-\(UUID().uuidString.prefix(8).lowercased())@llm.test")
    }

    /// The `openai` package and its dependencies for the guest's Python (CPython 3.11,
    /// x86-64), unpacked and packed as one .tar.gz; wheels are fetched from PyPI once.
    static func openAIPackageArchive() async throws -> String {
        let cache = (ProcessInfo.processInfo.environment["OMNIRUN_CACHE_DIR"] ?? NSHomeDirectory() + "/.cache/omnirun")
            + "/openai-guest-wheels"
        let archive = TestRuntime.dataDirectory + "/openai-site-\(getpid()).tar.gz"
        if FileManager.default.fileExists(atPath: archive) { return archive }
        let python = try Python.interpreter(importing: "pip")
        let script = """
            import glob, os, subprocess, sys, tarfile, tempfile, zipfile
            cache, archive = sys.argv[1], sys.argv[2]
            if not glob.glob(os.path.join(cache, "openai-*.whl")):
                subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.11",
                                "--implementation", "cp", "--platform", "manylinux2014_x86_64", "-d", cache, "openai"], check=True)
            site = tempfile.mkdtemp()
            for wheel in glob.glob(os.path.join(cache, "*.whl")):
                zipfile.ZipFile(wheel).extractall(site)
            with tarfile.open(archive, "w:gz") as tar:
                tar.add(site, arcname=".")
            """
        let path = TestRuntime.dataDirectory + "/pack-openai-\(getpid()).py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        _ = try await Python.run(python, path, [cache, archive])
        return archive
    }

    static func usage(_ server: TestServer, key: String) async throws -> [String: Any] {
        try await server.client(key: key).get("/llm/v1/usage").object
    }
}

/// Spend figures are exact millionths of a cent; compare them without float noise.
func cents(_ value: Any?, equal expected: Double) -> Bool {
    guard let value = value as? Double else { return false }
    return abs(value - expected) < 1e-9
}

@Suite("LLM proxy", .timeLimit(.minutes(10)))
struct LLMProxyTests {
    @Test func modelsChatAndSpendFromTheOpenAIClient() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "chat")
        let models = try await LLMHarness.openAI(setup.server, key: key, "models")
        let ids = models["ids"] as? [String] ?? []
        #expect(ids.contains("test/echo") && ids.contains("costly/echo"), "\(models)")
        #expect(ids.contains("openai/gpt-4o-mini"), "the free tier is listed")
        let raw = try await setup.server.client(key: key).get("/llm/v1/models")
        let free = raw.object["data"] as? [[String: Any]] ?? []
        #expect(free.first { $0["id"] as? String == "openai/gpt-4o-mini" }?["free_tier"] as? Bool == true)

        #expect(try await LLMHarness.usage(setup.server, key: key)["spendUsedCents"] as? Double == 0)
        // Reported cost: 0.01 upstream credits = 1 cent.
        let costly = try await LLMHarness.openAI(setup.server, key: key, "chat", "costly/echo", "hello there")
        #expect(costly["content"] as? String == "echo: hello there", "\(costly)")
        #expect((costly["usage"] as? [String: Any])?["prompt_tokens"] as? Int == 10)
        var usage = try await LLMHarness.usage(setup.server, key: key)
        #expect(usage["spendUsedCents"] as? Double == 1)
        #expect(usage["spendCapCents"] as? Int == 500)
        #expect(usage["remainingCents"] as? Double == 499)
        // No reported cost: the price table's fallback (300 and 1500 cents per million tokens).
        _ = try await LLMHarness.openAI(setup.server, key: key, "chat", "test/echo", "hi")
        usage = try await LLMHarness.usage(setup.server, key: key)
        let expected: Double = 1 + Double(10 * 300 + 2 * 1500) / 1_000_000
        #expect(cents(usage["spendUsedCents"], equal: expected), "\(usage)")
        // The model id went upstream unchanged, with the upstream's key (checked by the stand-in).
        let log = try String(contentsOfFile: setup.requestLog, encoding: .utf8)
        #expect(log.contains("\"model\": \"costly/echo\""))
    }

    @Test func streamingPassesChunksThroughAsTheyArrive() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "stream")
        // The stand-in waits 0.4 s between words; a proxy that buffered would deliver them at
        // once (a client starved for the whole stream reads them at once too: one of two).
        let (result, streams) = try await LLMHarness.stream(spreadOver: 0.6) {
            try await LLMHarness.openAI(setup.server, key: key, "stream", "costly/echo", "one two three four five")
        }
        let pieces = result["pieces"] as? [String] ?? []
        #expect(pieces.joined() == "echo: one two three four five", "\(result)")
        #expect(pieces.count == 6)
        #expect(LLMHarness.spread(result) > 0.6, "\(result["times"] ?? [])")
        // The client did not ask for usage: the proxy asked upstream, charged it, and kept it out of the stream.
        #expect(result["usage"] is NSNull)
        #expect(try await LLMHarness.usage(setup.server, key: key)["spendUsedCents"] as? Double == Double(streams))
    }

    @Test func spendIsExactUnderConcurrencyAndTheCapAnswers402() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "cap")
        let many = try await LLMHarness.openAI(setup.server, key: key, "many", "costly/echo", "40")
        #expect((many["statuses"] as? [Int] ?? []).filter { $0 == 200 }.count == 40, "\(many)")
        #expect(try await LLMHarness.usage(setup.server, key: key)["spendUsedCents"] as? Double == 40)
        // 2.5 credits = 250 cents a request: two more reach the 500-cent cap.
        #expect(try await LLMHarness.openAI(setup.server, key: key, "chat", "pricey/echo", "a")["ok"] as? Bool == true)
        #expect(try await LLMHarness.openAI(setup.server, key: key, "chat", "pricey/echo", "b")["ok"] as? Bool == true)
        let refused = try await LLMHarness.openAI(setup.server, key: key, "chat", "costly/echo", "c")
        #expect(refused["status"] as? Int == 402, "\(refused)")
        #expect((refused["body"] as? [String: Any])?["error"] as? String == "spend_cap_reached")
        let usage = try await LLMHarness.usage(setup.server, key: key)
        #expect(usage["spendUsedCents"] as? Double == 540)
        #expect(usage["remainingCents"] as? Double == 0)
    }

    @Test func rateLimitRoutingAndConfigFile() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.strict, "rate")
        let unrouted = try await LLMHarness.openAI(setup.strict, key: key, "chat", "costly/echo", "x")
        #expect(unrouted["status"] as? Int == 404, "\(unrouted)")
        let burst = try await LLMHarness.openAI(setup.strict, key: key, "many", "test/echo", "5")
        let statuses = burst["statuses"] as? [Int] ?? []
        #expect(statuses.filter { $0 == 200 }.count == 2, "\(burst)")
        #expect(statuses.filter { $0 == 429 }.count == 3, "\(burst)")
        let raw = try await setup.strict.client(key: key).request(
            "POST", "/llm/v1/chat/completions", json: ["model": "test/echo", "messages": [["role": "user", "content": "x"]]])
        #expect(raw.status == 429)
        #expect(raw.object["error"] as? String == "limit_reached")
        #expect(Int(raw.header("Retry-After") ?? "") ?? 0 > 0)
        // The config file's cap and price table: 10 + 2 tokens at 1000 cents per million each.
        let usage = try await LLMHarness.usage(setup.strict, key: key)
        #expect(usage["spendCapCents"] as? Int == 100)
        let expected = Double(2 * 12 * 1000) / 1_000_000
        #expect(cents(usage["spendUsedCents"], equal: expected), "\(usage)")
    }

    @Test func upstreamFailuresAre502And504() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "errors")
        let broken = try await LLMHarness.openAI(setup.server, key: key, "chat", "test/broken", "x")
        #expect(broken["status"] as? Int == 502, "\(broken)")
        #expect((broken["body"] as? [String: Any])?["error"] as? String == "upstream_error")
        #expect(((broken["body"] as? [String: Any])?["message"] as? String)?.contains("the upstream broke") == true)
        let refused = try await LLMHarness.openAI(setup.server, key: key, "chat", "test/refuses", "x")
        #expect(refused["status"] as? Int == 400, "\(refused)")
        let slow = try await LLMHarness.openAI(setup.server, key: key, "chat", "test/slow", "x")
        #expect(slow["status"] as? Int == 504, "\(slow)")
        #expect((slow["body"] as? [String: Any])?["error"] as? String == "upstream_timeout")
        // The stand-in answers after 30 s; the 504 came from the proxy's own timeout (3 s)
        // well before, as the client timed the call itself (its interpreter's start, seconds
        // on a loaded machine, is not counted).
        #expect((slow["elapsed"] as? Double ?? 99) < 20, "\(slow)")
        // A stream that stalls after its first chunk ends with an error event the client raises.
        let stalled = try await LLMHarness.openAI(setup.server, key: key, "stream", "test/stall", "x y")
        #expect(stalled["ok"] as? Bool == false, "\(stalled)")
        // Failed requests cost nothing.
        // (The stalled stream's one word is charged by estimate: well under a tenth of a cent.)
        #expect(try await LLMHarness.usage(setup.server, key: key)["spendUsedCents"] as? Double ?? 1 < 0.1)
    }

    @Test func malformedRequestsAreClear4xx() async throws {
        let setup = try await LLMHarness.shared.value
        let client = setup.server.client(key: try LLMHarness.account(setup.server, "malformed"))
        let path = "/llm/v1/chat/completions"
        let notJSON = try await client.request("POST", path, body: Data("{not json".utf8), contentType: "application/json")
        #expect(notJSON.status == 400)
        #expect(notJSON.object["error"] as? String == "invalid_argument")
        let bodies: [[String: Any]] = [
            [:], ["model": "test/echo"], ["model": "test/echo", "messages": []], ["model": "", "messages": [["role": "user"]]],
            ["model": "test/echo", "messages": ["hi"]], ["model": "test/echo", "messages": [["role": "user", "content": "x"]], "stream": "yes"],
            ["model": 5, "messages": [["role": "user", "content": "x"]]],
        ]
        for body in bodies {
            let reply = try await client.request("POST", path, json: body)
            #expect(reply.status == 400, "\(body): \(reply.text)")
            #expect(reply.header("Content-Type")?.contains("json") == true)
        }
        let huge = try await client.request("POST", path, body: Data(repeating: 32, count: 5 << 20), contentType: "application/json")
        #expect(huge.status == 413)
        let anonymous = HTTPTestClient(baseURL: setup.server.baseURL, apiKey: nil)
        #expect(try await anonymous.get("/llm/v1/usage").status == 401)
        #expect(try await anonymous.request("POST", path, json: ["model": "test/echo"]).status == 401)
    }

    @Test func codeInsideAnAirGappedSandboxCallsTheProxyAsItsOwner() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "sandbox")
        let client = setup.server.client(key: key)
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let env = try await client.post("/sandboxes/\(id)/commands", ["command": "echo $OMNIRUN_LLM_BASE_URL $OPENAI_BASE_URL"])
        #expect(env.object["stdout"] as? String == "http://127.0.0.1:18080/llm/v1 http://127.0.0.1:18080/llm/v1\n")
        // The guest has no network device at all; the call goes through the agent's channel.
        let script = """
            import json, os, urllib.request
            base = os.environ["OPENAI_BASE_URL"]
            headers = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"}
            def post(body):
                return urllib.request.urlopen(urllib.request.Request(base + "/chat/completions", json.dumps(body).encode(), headers))
            reply = json.load(post({"model": "costly/echo", "messages": [{"role": "user", "content": "from inside"}]}))
            print(reply["choices"][0]["message"]["content"])
            text = ""
            for line in post({"model": "test/echo", "stream": True, "messages": [{"role": "user", "content": "streamed too"}]}):
                line = line.decode().strip()
                if line.startswith("data: {"):
                    for choice in json.loads(line[6:])["choices"]:
                        text += choice["delta"].get("content") or ""
            print(text)
            print(json.load(urllib.request.urlopen(urllib.request.Request(base + "/usage", headers=headers)))["spendUsedCents"] >= 1)
            """
        _ = try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/llm.py", "content": script])
        let run = try await client.post("/sandboxes/\(id)/commands", ["command": "python3 /tmp/llm.py", "timeout": 120])
        #expect(run.object["exit_code"] as? Int == 0, "\(run.text)")
        #expect(run.object["stdout"] as? String == "echo: from inside\necho: streamed too\nTrue\n", "\(run.text)")
        // Charged to the sandbox's owner.
        #expect((try await LLMHarness.usage(setup.server, key: key)["spendUsedCents"] as? Double ?? 0) > 1)
        let ip = try await client.post("/sandboxes/\(id)/commands", ["command": "ip -o link | grep -vc ' lo:' || true"])
        #expect(ip.object["stdout"] as? String == "0\n", "no network device besides loopback")
        // Only the LLM proxy answers there: not the rest of the API.
        let other = try await client.post(
            "/sandboxes/\(id)/commands",
            ["command": "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18080/sandboxes"])
        #expect(other.object["stdout"] as? String == "403")
    }

    /// The official `openai` package itself, unchanged, inside the air-gapped sandbox: its
    /// wheels (fetched from PyPI on the host, cached) are unpacked in the guest, and it
    /// finds the proxy through OPENAI_BASE_URL / OPENAI_API_KEY alone.
    @Test func theOpenAIPackageWorksInsideTheSandbox() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "sdk-inside")
        let client = setup.server.client(key: key)
        let archive = try await LLMHarness.openAIPackageArchive()
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let boundary = "----omnirun\(UUID().uuidString)"
        var form = Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n/tmp/openai-site.tar.gz\r\n".utf8)
        form.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"site.tar.gz\"\r\n\r\n".utf8))
        form.append(try Data(contentsOf: URL(fileURLWithPath: archive)))
        form.append(Data("\r\n--\(boundary)--\r\n".utf8))
        let upload = try await client.request(
            "POST", "/sandboxes/\(id)/files/upload", body: form, contentType: "multipart/form-data; boundary=\(boundary)")
        #expect(upload.status == 200, "\(upload.text)")
        let script = try String(contentsOfFile: Python.script("openai-client.py"), encoding: .utf8)
        _ = try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/openai-client.py", "content": script])
        let unpack = try await client.request(
            "POST", "/sandboxes/\(id)/commands",
            json: ["command": "mkdir -p /tmp/site && tar xzf /tmp/openai-site.tar.gz -C /tmp/site", "timeout": 300], timeout: 320)
        #expect(unpack.object["exit_code"] as? Int == 0, "\(unpack.text)")
        let chat = try await client.request(
            "POST", "/sandboxes/\(id)/commands",
            json: ["command": "PYTHONPATH=/tmp/site python3 /tmp/openai-client.py chat costly/echo 'from the sdk inside'", "timeout": 300],
            timeout: 320)
        let reply = (try? JSONSerialization.jsonObject(with: Data((chat.object["stdout"] as? String ?? "").utf8))) as? [String: Any]
        #expect(reply?["content"] as? String == "echo: from the sdk inside", "\(chat.text)")
        let stream = try await client.request(
            "POST", "/sandboxes/\(id)/commands",
            json: ["command": "PYTHONPATH=/tmp/site python3 /tmp/openai-client.py stream test/echo 'streamed inside'", "timeout": 300],
            timeout: 320)
        let streamed = (try? JSONSerialization.jsonObject(with: Data((stream.object["stdout"] as? String ?? "").utf8))) as? [String: Any]
        #expect((streamed?["pieces"] as? [String])?.joined() == "echo: streamed inside", "\(stream.text)")
        #expect(cents(try await LLMHarness.usage(setup.server, key: key)["spendUsedCents"], equal: 1 + Double(10 * 300 + 3 * 1500) / 1_000_000))
    }
}
