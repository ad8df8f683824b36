import Foundation
import Testing
import TestSupport

/// The proxy's Anthropic Messages and OpenAI Responses protocols, driven by the official
/// `anthropic` and `openai` packages against a real server and the stand-in upstream
/// (scripts/testdata/fake-llm-upstream.py), which speaks each protocol over a real socket.
@Suite("LLM proxy protocols: Anthropic Messages and OpenAI Responses", .timeLimit(.minutes(10)))
struct LLMProtocolTests {
    /// The fallback price (300 and 1500 cents per million tokens) of `tokens` in and out, in cents.
    static func fallbackCents(_ prompt: Int, _ completion: Int) -> Double {
        Double(prompt * 300 + completion * 1500) / 1_000_000
    }

    @Test func messagesFromTheAnthropicClientPlainAndStreamed() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "messages")
        let plain = try await LLMHarness.anthropic(setup.server, key: key, "create", "costly/echo", "hello there")
        #expect(plain["text"] as? String == "echo: hello there", "\(plain)")
        #expect(plain["stop"] as? String == "end_turn")
        #expect((plain["usage"] as? [String: Any])?["input_tokens"] as? Int == 10)
        #expect((plain["usage"] as? [String: Any])?["output_tokens"] as? Int == 3)
        // Reported cost: 0.01 credits = 1 cent.
        #expect(try await LLMHarness.usage(setup.server, key: key)["spendUsedCents"] as? Double == 1)
        // Upstream, the proxy sent the key as x-api-key (the stand-in refuses it otherwise) and
        // passed the client's anthropic-version and anthropic-beta on.
        let sent = try await LLMHarness.upstreamRequests().last {
            ($0["_path"] as? String)?.hasSuffix("/messages") == true
                && (($0["messages"] as? [[String: Any]])?.first?["content"] as? String) == "hello there"
        }
        let headers = sent?["_headers"] as? [String: Any] ?? [:]
        #expect(headers["anthropic-beta"] as? String == "omnirun-test-2026", "\(String(describing: sent))")
        #expect((headers["anthropic-version"] as? String ?? "").count >= 10)

        // The stand-in waits 0.4 s between words (2 s in all); a proxy that buffered would
        // deliver them at once. On a loaded machine the client may see the first ones late
        // and bunched (a client starved for the whole stream reads them all at once), so more
        // than one gap's worth of spread is asked, in one of two streams.
        let (streamed, streams) = try await LLMHarness.stream(spreadOver: 0.3) {
            try await LLMHarness.anthropic(setup.server, key: key, "stream", "test/echo", "one two three four five")
        }
        let pieces = streamed["pieces"] as? [String] ?? []
        #expect(pieces.joined() == "echo: one two three four five", "\(streamed)")
        #expect(pieces.count == 6)
        #expect(LLMHarness.spread(streamed) > 0.3, "\(streamed["times"] ?? [])")
        #expect((streamed["usage"] as? [String: Any])?["output_tokens"] as? Int == 6)
        // No reported cost: 10 tokens in (message_start), 6 out (message_delta) at the fallback price.
        let usage = try await LLMHarness.usage(setup.server, key: key)
        #expect(cents(usage["spendUsedCents"], equal: 1 + Double(streams) * Self.fallbackCents(10, 6)), "\(usage)")
    }

    @Test func messagesToolUseAndToolResultPassThrough() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "messages-tool")
        let turn = try await LLMHarness.anthropic(setup.server, key: key, "tool", "test/tool")
        #expect(turn["ok"] as? Bool == true, "\(turn)")
        #expect(turn["stop"] as? String == "tool_use")
        #expect(turn["tool"] as? String == "get_weather")
        // The tool's input came as partial JSON in two deltas, assembled by the client.
        #expect((turn["input"] as? [String: Any])?["city"] as? String == "Paris")
        #expect(turn["answer"] as? String == "tool said: 18 C and sunny")
        let last = try await LLMHarness.upstreamRequests().last {
            ($0["_path"] as? String)?.hasSuffix("/messages") == true && $0["model"] as? String == "test/tool"
                && (($0["messages"] as? [[String: Any]])?.count ?? 0) == 3
        }
        let content = ((last?["messages"] as? [[String: Any]])?.last?["content"] as? [[String: Any]])?.first
        #expect(content?["type"] as? String == "tool_result" && content?["tool_use_id"] as? String == turn["id"] as? String)
    }

    @Test func countTokensIsPassedThroughAndNotCharged() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "count")
        let count = try await LLMHarness.anthropic(setup.server, key: key, "count", "test/echo", "hi")
        // The stand-in counts a quarter of the messages' JSON: [{"role": "user", "content": "hi"}].
        #expect(count["input_tokens"] as? Int == 8, "\(count)")
        #expect(try await LLMHarness.usage(setup.server, key: key)["spendUsedCents"] as? Double == 0)
        let streamed = try await setup.server.client(key: key).request(
            "POST", "/llm/v1/messages/count_tokens",
            json: ["model": "test/echo", "stream": true, "messages": [["role": "user", "content": "x"]]])
        #expect(streamed.status == 400, "\(streamed.text)")
    }

    @Test func responsesFromTheOpenAIClientPlainStreamedAndWithATool() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "responses")
        let plain = try await LLMHarness.openAI(setup.server, key: key, "responses", "costly/echo", "hello there")
        #expect(plain["text"] as? String == "echo: hello there", "\(plain)")
        #expect((plain["usage"] as? [String: Any])?["input_tokens"] as? Int == 10)
        #expect(try await LLMHarness.usage(setup.server, key: key)["spendUsedCents"] as? Double == 1)

        let streamed = try await LLMHarness.openAI(setup.server, key: key, "responses-stream", "test/echo", "one two three four five")
        let pieces = streamed["pieces"] as? [String] ?? []
        #expect(pieces.joined() == "echo: one two three four five", "\(streamed)")
        let events = streamed["events"] as? [String] ?? []
        #expect(events.first == "response.created" && events.last == "response.completed", "\(events)")
        // Usage arrives with response.completed: 10 in, 6 out.
        #expect(((streamed["final"] as? [String: Any])?["usage"] as? [String: Any])?["output_tokens"] as? Int == 6)
        let usage = try await LLMHarness.usage(setup.server, key: key)
        #expect(cents(usage["spendUsedCents"], equal: 1 + Self.fallbackCents(10, 6)), "\(usage)")

        let tool = try await LLMHarness.openAI(setup.server, key: key, "responses-tool", "test/tool")
        #expect(tool["tool"] as? String == "get_weather", "\(tool)")
        #expect((tool["arguments"] as? [String: Any])?["city"] as? String == "Paris")
        #expect(tool["answer"] as? String == "tool said: 18 C and sunny")
    }

    /// Responses streams pass event by event: the stand-in waits 0.4 s between words, and the
    /// proxy's answer (read here as raw bytes, as they arrive) must spread over that time.
    @Test func responsesStreamArrivesEventByEvent() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "responses-raw")
        let times = try await RawSSE.deltaTimes(
            url: setup.server.baseURL + "/llm/v1/responses", key: key,
            body: ["model": "test/echo", "stream": true, "input": "one two three four five"], delta: "response.output_text.delta")
        #expect(times.count == 6, "\(times)")
        #expect((times.last ?? 0) - (times.first ?? 0) > 0.6, "\(times)")
    }

    @Test func eitherKeyHeaderAndClearErrors() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "protocol-errors")
        let anonymous = HTTPTestClient(baseURL: setup.server.baseURL, apiKey: nil)
        let message: [String: Any] = ["model": "test/echo", "max_tokens": 8, "messages": [["role": "user", "content": "hi"]]]
        for headers in [["x-api-key": key], ["Authorization": "Bearer \(key)"]] {
            let reply = try await anonymous.request("POST", "/llm/v1/messages", json: message, headers: headers)
            #expect(reply.status == 200, "\(headers.keys): \(reply.text)")
            #expect(((reply.object["content"] as? [[String: Any]])?.first?["text"] as? String) == "echo: hi")
        }
        #expect(try await anonymous.request("POST", "/llm/v1/messages", json: message).status == 401)
        #expect(try await anonymous.request("POST", "/llm/v1/responses", json: ["model": "test/echo", "input": "x"]).status == 401)

        let client = setup.server.client(key: key)
        let bad: [(String, [String: Any])] = [
            ("/llm/v1/messages", ["model": "test/echo", "messages": [["role": "user", "content": "no max_tokens"]]]),
            ("/llm/v1/messages", ["model": "test/echo", "max_tokens": 8, "messages": []]),
            ("/llm/v1/messages", ["model": "test/echo", "max_tokens": 0, "messages": [["role": "user", "content": "x"]]]),
            ("/llm/v1/messages", ["model": "test/echo", "max_tokens": 8, "system": 5, "messages": [["role": "user", "content": "x"]]]),
            ("/llm/v1/messages", ["max_tokens": 8, "messages": [["role": "user", "content": "x"]]]),
            ("/llm/v1/responses", ["model": "test/echo"]),
            ("/llm/v1/responses", ["model": "test/echo", "input": 5]),
            ("/llm/v1/responses", ["model": "test/echo", "input": "x", "stream": "yes"]),
        ]
        for (path, body) in bad {
            let reply = try await client.request("POST", path, json: body)
            #expect(reply.status == 400, "\(path) \(body): \(reply.text)")
            #expect(reply.object["error"] as? String == "invalid_argument")
        }
        let badVersion = try await client.request("POST", "/llm/v1/messages", json: message, headers: ["anthropic-version": "2023\u{7}"])
        #expect(badVersion.status == 400, "\(badVersion.text)")
        let longBeta = try await client.request(
            "POST", "/llm/v1/messages", json: message, headers: ["anthropic-beta": String(repeating: "b", count: 5000)])
        #expect(longBeta.status == 400, "\(longBeta.text)")
        let notJSON = try await client.request("POST", "/llm/v1/responses", body: Data("{nope".utf8), contentType: "application/json")
        #expect(notJSON.status == 400)
        let huge = try await client.request("POST", "/llm/v1/messages", body: Data(repeating: 32, count: 5 << 20), contentType: "application/json")
        #expect(huge.status == 413)

        // The upstream's failures: its 500 is a 502, its 400 stays a 400, a stall mid-stream
        // ends the stream with the protocol's own error event, which the clients raise.
        let broken = try await LLMHarness.anthropic(setup.server, key: key, "create", "test/broken", "x")
        #expect(broken["status"] as? Int == 502, "\(broken)")
        #expect((broken["body"] as? [String: Any])?["error"] as? String == "upstream_error")
        let refused = try await LLMHarness.openAI(setup.server, key: key, "responses", "test/refuses", "x")
        #expect(refused["status"] as? Int == 400, "\(refused)")
        let stalled = try await LLMHarness.anthropic(setup.server, key: key, "stream", "test/stall", "x y")
        #expect(stalled["ok"] as? Bool == false, "\(stalled)")
        #expect(((stalled["body"] as? [String: Any])?["error"] as? [String: Any])?["type"] as? String == "timeout_error", "\(stalled)")
        let failed = try await LLMHarness.openAI(setup.server, key: key, "responses-stream", "test/stall", "x y")
        let error = (failed["final"] as? [String: Any])?["error"] as? [String: Any]
        #expect(error?["code"] as? String == "upstream_timeout", "\(failed)")
    }

    @Test func theSpendCapIs402InBothProtocols() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "protocol-cap")
        // 2.5 credits = 250 cents a request: two reach the 500-cent cap.
        #expect(try await LLMHarness.anthropic(setup.server, key: key, "create", "pricey/echo", "a")["ok"] as? Bool == true)
        #expect(try await LLMHarness.openAI(setup.server, key: key, "responses", "pricey/echo", "b")["ok"] as? Bool == true)
        let messages = try await LLMHarness.anthropic(setup.server, key: key, "stream", "test/echo", "c")
        #expect(messages["status"] as? Int == 402, "\(messages)")
        #expect((messages["body"] as? [String: Any])?["error"] as? String == "spend_cap_reached")
        #expect((messages["message"] as? String ?? "").contains("spend cap"))
        let responses = try await LLMHarness.openAI(setup.server, key: key, "responses", "test/echo", "d")
        #expect(responses["status"] as? Int == 402, "\(responses)")
        let count = try await LLMHarness.anthropic(setup.server, key: key, "count", "test/echo", "e")
        #expect(count["status"] as? Int == 402, "\(count)")
        #expect(try await LLMHarness.usage(setup.server, key: key)["spendUsedCents"] as? Double == 500)
    }

    @Test func aProtocolTheModelsUpstreamDoesNotSpeakIs400() async throws {
        let setup = try await LLMHarness.shared.value
        let client = setup.strict.client(key: try LLMHarness.account(setup.strict, "unspoken"))
        let messages = try await client.request(
            "POST", "/llm/v1/messages", json: ["model": "test/echo", "max_tokens": 8, "messages": [["role": "user", "content": "x"]]])
        #expect(messages.status == 400, "\(messages.text)")
        let text = messages.object["message"] as? String ?? ""
        #expect(text.contains("fake") && text.contains("Anthropic Messages") && text.contains("/llm/v1/chat/completions"), "\(text)")
        let responses = try await client.request("POST", "/llm/v1/responses", json: ["model": "test/echo", "input": "x"])
        #expect(responses.status == 400, "\(responses.text)")
        #expect((responses.object["message"] as? String ?? "").contains("OpenAI Responses"))
        let unrouted = try await client.request("POST", "/llm/v1/responses", json: ["model": "costly/echo", "input": "x"])
        #expect(unrouted.status == 404, "\(unrouted.text)")
    }

    /// Code in an air-gapped sandbox finds both new protocols through the variables every
    /// sandbox gets (ANTHROPIC_BASE_URL/ANTHROPIC_AUTH_TOKEN, OPENAI_BASE_URL) and the gateway.
    @Test func codeInAnAirGappedSandboxReachesBothProtocols() async throws {
        let setup = try await LLMHarness.shared.value
        let key = try LLMHarness.account(setup.server, "protocol-sandbox")
        let client = setup.server.client(key: key)
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let script = """
            import json, os, urllib.request
            def post(url, body, headers):
                headers["Content-Type"] = "application/json"
                return urllib.request.urlopen(urllib.request.Request(url, json.dumps(body).encode(), headers))
            anthropic = {"Authorization": "Bearer " + os.environ["ANTHROPIC_AUTH_TOKEN"], "anthropic-version": "2023-06-01"}
            text = ""
            for line in post(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", {"model": "test/echo", "max_tokens": 8, "stream": True,
                             "messages": [{"role": "user", "content": "from claude's side"}]}, anthropic):
                line = line.decode().strip()
                if line.startswith("data: {"):
                    event = json.loads(line[6:])
                    if event["type"] == "content_block_delta":
                        text += event["delta"]["text"]
            print(text)
            openai = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
            reply = json.load(post(os.environ["OPENAI_BASE_URL"] + "/responses", {"model": "costly/echo", "input": "from codex's side"}, openai))
            print(reply["output"][0]["content"][0]["text"])
            """
        _ = try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/protocols.py", "content": script])
        let run = try await client.post("/sandboxes/\(id)/commands", ["command": "python3 /tmp/protocols.py", "timeout": 120])
        #expect(run.object["exit_code"] as? Int == 0, "\(run.text)")
        #expect(run.object["stdout"] as? String == "echo: from claude's side\necho: from codex's side\n", "\(run.text)")
        let usage = try await LLMHarness.usage(setup.server, key: key)
        #expect(cents(usage["spendUsedCents"], equal: 1 + Self.fallbackCents(10, 4)), "\(usage)")
    }
}

/// Reads a server-sent event stream as its bytes arrive (scripts/testdata/sse-times.py, the
/// Python standard library), noting when each event of one name came.
enum RawSSE {
    static func deltaTimes(url: String, key: String, body: [String: Any], delta: String) async throws -> [Double] {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        let output = try await Python.run(try Python.interpreter(importing: "json"), Python.script("sse-times.py"), [url, key, json, delta])
        guard let times = (try? JSONSerialization.jsonObject(with: Data(output.utf8))) as? [Double] else {
            throw TestSetupError("sse-times.py printed \(output)")
        }
        return times
    }
}
