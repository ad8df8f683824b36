import Foundation
import LLMUpstreams
import OmniRunError
import Testing

/// The protocol rules of the LLM proxy, without a server: what a request must hold, where
/// usage is in each protocol's answers and streams, failure events, routing by protocol.
@Suite("LLM proxy protocols, unit")
struct LLMProtocolUnitTests {
    static func event(_ name: String?, _ json: String) -> [UInt8] {
        Array(((name.map { "event: \($0)\n" } ?? "") + "data: \(json)\n\n").utf8)
    }

    @Test func messagesStreamUsageCountsCacheTokensAndTheLastOutputCount() {
        var scan = LLMStreamScan(wire: .messages)
        let events = [
            Self.event(
                "message_start",
                #"{"type":"message_start","message":{"usage":{"input_tokens":100,"cache_creation_input_tokens":7,"cache_read_input_tokens":50,"output_tokens":1}}}"#
            ),
            Self.event("ping", #"{"type":"ping"}"#),
            Self.event("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"héllo"}}"#),
            Self.event(
                "content_block_delta", #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#),
            Self.event("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":12}}"#),
            Self.event("message_delta", #"{"type":"message_delta","delta":{},"usage":{"output_tokens":20}}"#),
            Self.event("message_stop", #"{"type":"message_stop"}"#),
        ]
        for event in events {
            let kept = scan.keep(event)
            #expect(kept)
        }
        #expect(scan.usage == LLMUsage(promptTokens: 157, completionTokens: 20))
        #expect(scan.contentCharacters == 5 + 5)
    }

    @Test func responsesStreamUsageComesWithTheFinalEvent() {
        var scan = LLMStreamScan(wire: .responses)
        var kept = scan.keep(Self.event("response.created", #"{"type":"response.created","response":{"usage":null}}"#))
        kept = scan.keep(Self.event("response.output_text.delta", #"{"type":"response.output_text.delta","delta":"abc"}"#)) && kept
        #expect(scan.usage == nil)
        kept =
            scan.keep(
                Self.event(
                    "response.completed", #"{"type":"response.completed","response":{"usage":{"input_tokens":9,"output_tokens":4,"cost":0.02}}}"#))
            && kept
        #expect(kept)
        #expect(scan.usage == LLMUsage(promptTokens: 9, completionTokens: 4, cost: 0.02))
        #expect(scan.usage?.reportedMicrocents == 2_000_000)
        #expect(scan.contentCharacters == 3)
    }

    /// Counts from an upstream are numbers that fit, or nothing: never a trap.
    @Test func hostileUsageNumbersBecomeZero() {
        var scan = LLMStreamScan(wire: .messages)
        _ = scan.keep(
            Self.event(
                "message_start",
                #"{"type":"message_start","message":{"usage":{"input_tokens":-5,"cache_read_input_tokens":1e300,"output_tokens":"many"}}}"#))
        _ = scan.keep(Self.event("message_delta", #"{"type":"message_delta","usage":{"output_tokens":9.9e18,"input_tokens":-1}}"#))
        #expect(scan.usage == LLMUsage(promptTokens: 0, completionTokens: 0))
        #expect(LLMUsage(promptTokens: 0, completionTokens: 0, cost: 1e300).reportedMicrocents == nil)
        #expect(LLMUsage(promptTokens: 0, completionTokens: 0, cost: -1).reportedMicrocents == nil)
    }

    @Test func failureEventsSpeakEachProtocol() throws {
        let failure = OmniRunError(.upstreamTimeout, "upstream u did not answer in time")
        let messages = String(decoding: LLMStreamScan(wire: .messages).failureEvent(failure), as: UTF8.self)
        #expect(messages.hasPrefix("event: error\ndata: ") && messages.hasSuffix("\n\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(messages.dropFirst(19).utf8)) as? [String: Any])
        #expect(object["type"] as? String == "error")
        #expect((object["error"] as? [String: Any])?["type"] as? String == "timeout_error")
        // A response that broke off fails under its own id, its events' numbering continued
        // (the openai client refuses a lifecycle event of another response).
        var scan = LLMStreamScan(wire: .responses)
        _ = scan.keep(Self.event("response.created", #"{"type":"response.created","sequence_number":3,"response":{"id":"resp_9"}}"#))
        let responses = String(decoding: scan.failureEvent(failure), as: UTF8.self)
        #expect(responses.hasPrefix("event: response.failed\ndata: {"))
        let failed = try #require(try JSONSerialization.jsonObject(with: Data(responses.dropFirst(29).utf8)) as? [String: Any])
        #expect((failed["response"] as? [String: Any])?["id"] as? String == "resp_9")
        #expect(failed["sequence_number"] as? Int == 4)
        #expect(((failed["response"] as? [String: Any])?["error"] as? [String: Any])?["code"] as? String == "upstream_timeout")
        let chat = String(decoding: LLMStreamScan(wire: .chatCompletions).failureEvent(failure), as: UTF8.self)
        #expect(chat.hasPrefix("data: {\"error\":"))
    }

    @Test func requestsAreCheckedByTheirProtocol() throws {
        func parse(_ json: String, _ wire: LLMProtocol, countTokens: Bool = false) throws -> LLMRequest {
            try LLMRequest.parse(Data(json.utf8), wire: wire, countTokens: countTokens)
        }
        let message = #""model":"claude-x","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]"#
        let streamed = try parse("{\(message),\"max_tokens\":10,\"stream\":true}", .messages)
        #expect(streamed.stream && streamed.model == "claude-x")
        #expect(throws: (any Error).self) { try parse("{\(message)}", .messages) }
        #expect(throws: (any Error).self) { try parse("{\(message),\"max_tokens\":1.5}", .messages) }
        #expect(throws: (any Error).self) { try parse("{\(message),\"max_tokens\":9,\"system\":{}}", .messages) }
        _ = try parse("{\(message),\"max_tokens\":9,\"system\":[{\"type\":\"text\",\"text\":\"s\"}]}", .messages)
        _ = try parse("{\(message)}", .messages, countTokens: true)
        #expect(throws: (any Error).self) { try parse("{\(message),\"stream\":true}", .messages, countTokens: true) }

        let response = try parse(#"{"model":"gpt-x","input":[{"role":"user","content":"hi"}],"stream":true,"store":false}"#, .responses)
        #expect(response.stream)
        _ = try parse(#"{"model":"gpt-x","input":"hi"}"#, .responses)
        #expect(throws: (any Error).self) { try parse(#"{"model":"gpt-x","messages":[]}"#, .responses) }
        #expect(throws: (any Error).self) { try parse(#"{"model":"gpt-x","input":"x","max_output_tokens":0}"#, .responses) }
        // Only the model changes on the way upstream; the rest is the client's, untouched.
        let body = try JSONSerialization.jsonObject(with: response.upstreamBody(model: "x", requestCost: true)) as? [String: Any]
        #expect(body?["model"] as? String == "x" && body?["store"] as? Bool == false && body?["usage"] == nil)
        #expect(body?["stream_options"] == nil)
    }

    @Test func routingChoosesAnUpstreamThatSpeaksTheProtocol() throws {
        let router = ModelRouter(upstreams: [
            Upstream(name: "aggregator", baseURL: "https://a.test/v1", models: ["*"]),
            Upstream(name: "anthropic", baseURL: "https://b.test/v1", models: ["claude-*"], protocols: [.messages]),
            Upstream(name: "both", baseURL: "https://c.test/v1", models: ["gpt-5*"], protocols: [.chatCompletions, .responses]),
        ])
        #expect(router.route("claude-opus", speaking: .messages)?.upstream.name == "anthropic")
        #expect(router.route("claude-opus", speaking: .chatCompletions)?.upstream.name == "aggregator")
        #expect(router.route("claude-opus")?.upstream.name == "anthropic")
        #expect(router.route("gpt-5-codex", speaking: .responses)?.upstream.name == "both")
        #expect(router.route("gpt-4o", speaking: .responses) == nil)
        #expect(router.route("gpt-4o", speaking: .messages) == nil)
        #expect(try LLMProtocol.list(" chat, messages ,responses") == [.chatCompletions, .messages, .responses])
        #expect(throws: (any Error).self) { try LLMProtocol.list("chat,grpc") }
    }

    @Test func protocolsFromTheConfigurationFileAndTheEnvironment() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/omnirun-llm-protocols-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try #"{"upstreams":[{"name":"a","baseURL":"http://127.0.0.1:1/v1","models":["claude-*"],"protocols":["messages"]}]}"#
            .write(toFile: directory + "/llm.json", atomically: true, encoding: .utf8)
        let configuration = try LLMConfiguration.load(
            dataDirectory: directory,
            environment: ["OMNIRUN_LLM_UPSTREAM_URL": "http://127.0.0.1:2/v1", "OMNIRUN_LLM_UPSTREAM_PROTOCOLS": "chat,responses"])
        #expect(configuration.upstreams.map(\.spokenProtocols) == [[.messages], [.chatCompletions, .responses]])
        #expect(try LLMConfiguration.load(dataDirectory: directory + "/none", environment: ["OMNIRUN_LLM_UPSTREAM_URL": "http://h/v1"])
            .upstreams.first?.spokenProtocols == [.chatCompletions])
        #expect(throws: (any Error).self) {
            try LLMConfiguration.load(
                dataDirectory: directory, environment: ["OMNIRUN_LLM_UPSTREAM_URL": "http://h/v1", "OMNIRUN_LLM_UPSTREAM_PROTOCOLS": "soap"])
        }
        for bad in [#""protocols":[]"#, #""protocols":["grpc"]"#] {
            try #"{"upstreams":[{"name":"a","baseURL":"http://127.0.0.1:1/v1","models":["*"],\#(bad)}]}"#
                .write(toFile: directory + "/llm.json", atomically: true, encoding: .utf8)
            #expect(throws: (any Error).self, "\(bad)") { try LLMConfiguration.load(dataDirectory: directory, environment: [:]) }
        }
    }

    @Test func anthropicHeadersAreCheckedAndDefaulted() throws {
        #expect(try MessagesHeaders.forward(version: nil, beta: nil).map(\.1) == ["2023-06-01"])
        let headers = try MessagesHeaders.forward(version: "2026-10-21", beta: "a-2025,b-2026")
        #expect(headers.map(\.0) == ["anthropic-version", "anthropic-beta"] && headers.map(\.1) == ["2026-10-21", "a-2025,b-2026"])
        for bad in ["x\r\nx-api-key: stolen", "é", String(repeating: "v", count: 2000)] {
            #expect(throws: (any Error).self) { try MessagesHeaders.forward(version: bad, beta: nil) }
            #expect(throws: (any Error).self) { try MessagesHeaders.forward(version: nil, beta: bad) }
        }
    }

    @Test func sseSplittingKeepsEventNamesAndFindsEndsAcrossFeeds() throws {
        let stream = Array("event: a\ndata: {\"x\":1}\n\r\nevent: b\r\ndata: 2\n\n".utf8)
        for cut in 1..<stream.count {
            var splitter = SSEEventSplitter()
            var events: [[UInt8]] = []
            // One byte at a time after the cut: the end of an event may straddle feeds.
            events += try splitter.feed(stream[..<cut])
            for byte in stream[cut...] { events += try splitter.feed([byte]) }
            #expect(events.count == 2, "cut \(cut)")
            #expect(events.flatMap { $0 } == stream)
            #expect(events.first.map { SSEEventSplitter.data(of: $0) } == "{\"x\":1}")
        }
    }
}
