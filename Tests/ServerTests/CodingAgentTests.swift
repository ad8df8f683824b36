import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for the model behind the agents (scripts/testdata/agent-upstream.py: Anthropic
/// Messages and OpenAI Responses over SSE, one scripted tool turn), and a server whose LLM
/// proxy forwards to it.
enum CodingAgentHarness {
    struct Setup: Sendable {
        let upstream: HelperProcess
        let server: TestServer
        let requestLog: String
    }

    static let upstreamKey = "agent-upstream-\(getpid())"

    static let shared = Task<Setup, any Error> {
        let directory = TestRuntime.dataDirectory + "/agents-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let log = directory + "/requests.jsonl"
        let upstream = try await HelperProcess.start(
            try Python.interpreter(importing: "json"), [Python.script("agent-upstream.py"), "--key", upstreamKey, "--log", log],
            logPath: directory + "/upstream.log")
        // Every model goes to the stand-in, in both protocols; `burn/*` costs a fortune (to reach the cap).
        let configuration: [String: Any] = [
            "upstreams": [
                [
                    "name": "model", "baseURL": "http://127.0.0.1:\(upstream.port)/v1", "apiKeyEnv": "AGENT_UPSTREAM_KEY",
                    "models": ["*"], "protocols": ["messages", "responses"],
                ]
            ],
            "requestsPerMinute": 1000, "prices": ["burn/*": ["input": 1e9, "output": 1e9]],
        ]
        try JSONSerialization.data(withJSONObject: configuration).write(to: URL(fileURLWithPath: directory + "/llm.json"))
        let server = try await TestServer.start(
            name: "agents",
            environment: [
                "OMNIRUN_LLM_CONFIG": directory + "/llm.json", "AGENT_UPSTREAM_KEY": upstreamKey, "OMNIRUN_IDLE_TIMEOUT": "1800",
            ], logLevel: "info")
        return Setup(upstream: upstream, server: server, requestLog: log)
    }

    /// The stand-in's record of the agents' requests of one protocol (`messages`, `responses`;
    /// not the tests' own `burn/*` requests).
    static func requests(_ wire: String) async throws -> [[String: Any]] {
        let text = (try? String(contentsOfFile: try await shared.value.requestLog, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            .filter { $0["protocol"] as? String == wire && !($0["model"] as? String ?? "").hasPrefix("burn/") }
    }

    /// A new account and a sandbox of `template` for it (air-gapped: no network device).
    static func sandbox(_ template: String) async throws -> (client: HTTPTestClient, id: String) {
        guard TemplateTestGate.isBuilt(template) else {
            throw TestSetupError("template \(template) is not built: run `make image TEMPLATE=\(template)` (or `make templates`)")
        }
        let server = try await shared.value.server
        let client = server.client(key: try server.createKey(email: "\(template)-\(UUID().uuidString.prefix(8).lowercased())@agents.test"))
        let created = try await CreateGate.shared.run {
            try await client.request("POST", "/sandboxes", json: ["template": template, "timeout": 1800], timeout: 900)
        }
        try #require(created.status == 201, "\(created.text)")
        return (client, try #require(created.object["sandboxID"] as? String))
    }

    /// Runs `command` as the sandbox's user; returns exit code, stdout and stderr.
    static func run(_ client: HTTPTestClient, _ id: String, _ command: String) async throws -> (code: Int?, out: String, err: String) {
        let reply = try await client.request(
            "POST", "/sandboxes/\(id)/commands", json: ["command": command, "timeout": 600], timeout: 660)
        return (reply.object["exit_code"] as? Int, reply.object["stdout"] as? String ?? "", reply.object["stderr"] as? String ?? "")
    }

    /// Pushes the account past its spend cap with one (costly) request of its own.
    static func exhaustBudget(_ client: HTTPTestClient) async throws {
        let burn = try await client.request(
            "POST", "/llm/v1/messages", json: ["model": "burn/all", "max_tokens": 8, "messages": [["role": "user", "content": "x"]]])
        #expect(burn.status == 200, "\(burn.text)")
        #expect((try await client.get("/llm/v1/usage").object["remainingCents"] as? Double) == 0)
    }

    /// 100 tokens in and 20 out at the fallback price (300 and 1500 cents per million), in cents.
    static let centsPerRequest = Double(100 * 300 + 20 * 1500) / 1_000_000
}

/// The real agents, unchanged, in real sandboxes of their templates with no network device:
extension CodingAgentHarness {
    /// The public CLI's `beamup` chowns the agent's configuration to `coder:coder` and runs
    /// the agent as `coder`: a second name of the default user (uid 1000, home /home/coder).
    static func expectCoder(_ client: HTTPTestClient, _ id: String) async throws {
        let chown = try await run(client, id, "mkdir -p /tmp/cfg && chown -R coder:coder /tmp/cfg && stat -c %u:%g /tmp/cfg")
        #expect(chown.out == "1000:1000\n", "\(chown)")
        let reply = try await client.post(
            "/sandboxes/\(id)/commands", ["command": "id -u; echo $HOME; ls -d ~/workspace", "user": "coder", "timeout": 30])
        #expect(reply.object["stdout"] as? String == "1000\n/home/coder\n/home/coder/workspace\n", "\(reply.text)")
    }
}

/// Claude Code (`claude -p`) and Codex (`codex exec`) reach the model through the host gateway
/// and the LLM proxy, run the one shell command it asks for, send its result back, and finish;
/// the spend is the owner's. At the spend cap both stop with the proxy's 402 as a clear error.
/// Runs when the templates' images are built (`make image TEMPLATE=claude-code`, `make templates`).
@Suite("Coding agents: Claude Code and Codex through the LLM proxy", .timeLimit(.minutes(30)))
struct CodingAgentTests {
    @Test(.enabled(if: TemplateTestGate.shouldTest("claude-code")))
    func claudeCodeRunsItsBashToolThroughTheProxyAndStopsAtTheSpendCap() async throws {
        let (client, id) = try await CodingAgentHarness.sandbox("claude-code")
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let links = try await CodingAgentHarness.run(client, id, "ls /sys/class/net")
        #expect(links.out == "lo\n", "air-gapped: \(links)")
        try await CodingAgentHarness.expectCoder(client, id)
        let before = try await CodingAgentHarness.requests("messages").count

        let turn = try await CodingAgentHarness.run(
            client, id, "cd ~/workspace && claude -p 'Write the file /tmp/from-claude.' --output-format json --allowedTools Bash")
        #expect(turn.code == 0, "\(turn)")
        let result = (try? JSONSerialization.jsonObject(with: Data(turn.out.utf8))) as? [String: Any] ?? [:]
        #expect(result["is_error"] as? Bool == false, "\(turn)")
        #expect(result["result"] as? String == "The file is written.", "\(turn)")
        #expect(result["num_turns"] as? Int == 2)
        #expect(try await CodingAgentHarness.run(client, id, "cat /tmp/from-claude").out == "hi\n")
        // The stand-in saw its Bash call answered with the command's output.
        let requests = Array(try await CodingAgentHarness.requests("messages").dropFirst(before))
        #expect(requests.contains { ($0["checked"] as? [String: Any])?["ok"] as? Bool == true }, "\(requests)")
        #expect(requests.allSatisfy { ($0["tools"] as? [String] ?? []).isEmpty || ($0["tools"] as? [String] ?? []).contains("Bash") })
        // Every request was charged to the sandbox's owner, at the usage the stand-in reported.
        let usage = try await client.get("/llm/v1/usage").object
        #expect(cents(usage["spendUsedCents"], equal: Double(requests.count) * CodingAgentHarness.centsPerRequest), "\(usage)")

        try await CodingAgentHarness.exhaustBudget(client)
        let refused = try await CodingAgentHarness.run(
            client, id, "cd ~/workspace && claude -p 'Write it again.' --output-format json --allowedTools Bash")
        #expect(refused.code != 0, "\(refused)")
        let said = refused.out + refused.err
        #expect(said.contains("402") && said.contains("spend cap"), "\(refused)")
    }

    @Test(.enabled(if: TemplateTestGate.shouldTest("codex")))
    func codexRunsItsShellCallThroughTheProxyAndStopsAtTheSpendCap() async throws {
        let (client, id) = try await CodingAgentHarness.sandbox("codex")
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        try await CodingAgentHarness.expectCoder(client, id)
        let before = try await CodingAgentHarness.requests("responses").count

        // A model that calls tools the classic way (function calls); the newest defaults use a code mode.
        let exec = "cd ~/workspace && codex exec --skip-git-repo-check --sandbox workspace-write -m gpt-5-codex"
        let turn = try await CodingAgentHarness.run(client, id, "\(exec) 'Write the file /tmp/from-codex.' </dev/null")
        #expect(turn.code == 0, "\(turn)")
        #expect(turn.out.trimmingCharacters(in: .whitespacesAndNewlines) == "The file is written.", "\(turn)")
        #expect(try await CodingAgentHarness.run(client, id, "cat /tmp/from-codex").out == "hi\n")
        let requests = Array(try await CodingAgentHarness.requests("responses").dropFirst(before))
        #expect(requests.contains { ($0["checked"] as? [String: Any])?["ok"] as? Bool == true }, "\(requests)")
        let usage = try await client.get("/llm/v1/usage").object
        #expect(cents(usage["spendUsedCents"], equal: Double(requests.count) * CodingAgentHarness.centsPerRequest), "\(usage)")

        // The model provider is the proxy, unless the sandbox brings its own OpenAI key.
        let provider = "timeout 20 codex exec --skip-git-repo-check hi </dev/null 2>&1 | grep -m1 '^provider:'"
        #expect(try await CodingAgentHarness.run(client, id, provider).out == "provider: omnirun\n")
        #expect(try await CodingAgentHarness.run(client, id, "OPENAI_API_KEY=sk-own " + provider).out == "provider: openai\n")

        try await CodingAgentHarness.exhaustBudget(client)
        let refused = try await CodingAgentHarness.run(client, id, "\(exec) 'Write it again.' </dev/null")
        #expect(refused.code != 0, "\(refused)")
        let said = refused.out + refused.err
        #expect(said.contains("402") && said.contains("spend cap"), "\(refused)")
    }
}
