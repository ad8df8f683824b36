import Crypto
import Foundation
import LLMUpstreams
import SMTPClient
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import OmniRunControl
@testable import OmniRunServer

@Suite("Accounts, vault and LLM pieces")
struct AccountsUnitTests {
    @Test func vaultCipherSealsPerAccountAndName() throws {
        let cipher = VaultCipher(masterKey: SymmetricKey(size: .bits256))
        let wrapped = try cipher.newWrappedDataKey(accountID: "acc_a")
        let key = try cipher.unwrap(wrapped, accountID: "acc_a")
        let sealed = try cipher.seal(value: "sk-secret", name: "OPENAI_API_KEY", accountID: "acc_a", dataKey: key)
        #expect(!sealed.contains("sk-secret"))
        #expect(try cipher.open(sealed: sealed, name: "OPENAI_API_KEY", accountID: "acc_a", dataKey: key) == "sk-secret")
        // Bound to its account and name, and to this master key.
        #expect(throws: (any Error).self) { try cipher.open(sealed: sealed, name: "OTHER", accountID: "acc_a", dataKey: key) }
        #expect(throws: (any Error).self) { try cipher.unwrap(wrapped, accountID: "acc_b") }
        let other = VaultCipher(masterKey: SymmetricKey(size: .bits256))
        #expect(throws: (any Error).self) { try other.unwrap(wrapped, accountID: "acc_a") }
        // Every seal is fresh (random nonce).
        #expect(try cipher.seal(value: "x", name: "A", accountID: "acc_a", dataKey: key)
            != cipher.seal(value: "x", name: "A", accountID: "acc_a", dataKey: key))
    }

    @Test func masterKeyFileIsCreatedOnceWithMode0600() throws {
        let path = FileManager.default.temporaryDirectory.path + "/omnirun-master-\(UUID().uuidString)/master.key"
        let first = try MasterKeyFile.loadOrCreate(path: path)
        #expect(first.warning == nil)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let second = try MasterKeyFile.loadOrCreate(path: path)
        #expect(first.key.withUnsafeBytes { Array($0) } == second.key.withUnsafeBytes { Array($0) })
        chmod(path, 0o644)
        #expect(try MasterKeyFile.loadOrCreate(path: path).warning != nil)
        try "short".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try MasterKeyFile.loadOrCreate(path: path) }
    }

    @Test func emailAddresses() throws {
        #expect(try EmailAddress.normalize("  Alice@Example.COM ") == "alice@example.com")
        for good in ["a@b.co", "first.last+tag@sub.example.org", "x_y-z@a-b.io"] { #expect(EmailAddress.isValid(good), "\(good)") }
        for bad in ["", "a", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@b..co", ".a@b.co", "a@-b.co", "a\r\n@b.co", "é@b.co"] {
            #expect(!EmailAddress.isValid(bad), "\(bad)")
        }
    }

    @Test func signInCodesAreSixDigits() {
        let codes = (0..<200).map { _ in SignInService.newCode() }
        #expect(codes.allSatisfy { $0.count == 6 && $0.allSatisfy(\.isNumber) })
        #expect(Set(codes).count > 190)
        #expect(Secrets.equal("abc", "abc"))
        #expect(!Secrets.equal("abc", "abd"))
    }

    @Test func mailIsRenderedDotStuffedAndHeaderSafe() {
        let message = MailMessage(
            from: "OmniRun <noreply@example.test>", to: "bob@example.test\r\nBcc: eve@evil.test", subject: "Grüße",
            text: "line one\n.starts with a dot\nend", date: Date(timeIntervalSince1970: 0), messageID: "m1@example.test")
        let rendered = message.rendered()
        #expect(!rendered.contains("\r\nBcc:"))
        #expect(rendered.contains("Subject: =?UTF-8?B?"))
        #expect(rendered.contains("Date: Thu, 1 Jan 1970 00:00:00 +0000"))
        let payload = message.dataPayload()
        #expect(payload.contains("\r\n..starts with a dot\r\n"))
        #expect(payload.hasSuffix("\r\n.\r\n"))
        #expect(MailMessage.address(of: "OmniRun <noreply@example.test>") == "noreply@example.test")
    }

    @Test func modelRoutingAndPrices() {
        let router = ModelRouter(upstreams: [
            Upstream(name: "aggregator", baseURL: "https://a.test/v1", models: ["*"]),
            Upstream(name: "vllm", baseURL: "http://v.test/v1", models: ["local/*", "exact-model"], stripPrefix: true),
            Upstream(name: "openai", baseURL: "https://o.test/v1", models: ["openai/*", "openai/gpt-4o*"]),
        ])
        #expect(router.route("local/llama-3")?.upstream.name == "vllm")
        #expect(router.route("local/llama-3")?.upstreamModel == "llama-3")
        #expect(router.route("exact-model")?.upstream.name == "vllm")
        #expect(router.route("openai/gpt-4o-mini")?.upstream.name == "openai")
        #expect(router.route("openai/gpt-4o-mini")?.upstreamModel == "openai/gpt-4o-mini")
        #expect(router.route("anthropic/claude")?.upstream.name == "aggregator")
        #expect(ModelRouter(upstreams: []).route("x") == nil)

        let prices = PriceTable(prices: [
            "*": ModelPrice(input: 300, output: 1500), "openai/*": ModelPrice(input: 20, output: 80),
            "openai/gpt-4o-mini": ModelPrice(input: 15, output: 60),
        ])
        #expect(prices.costMicrocents(model: "openai/gpt-4o-mini", promptTokens: 1000, completionTokens: 100) == Int64(21_000))
        #expect(prices.costMicrocents(model: "openai/o3", promptTokens: 1, completionTokens: 1) == 100)
        #expect(prices.costMicrocents(model: "other", promptTokens: 2, completionTokens: 0) == 600)
        #expect(LLMUsage(promptTokens: 1, completionTokens: 1, cost: 0.000123).reportedMicrocents == 12_300)
        #expect(LLMUsage(promptTokens: 1, completionTokens: 1, cost: 2.5).reportedMicrocents == 250_000_000)
    }

    @Test func sseEventsAreSplitWhereverTheBytesBreak() throws {
        let stream = Array("data: {\"a\":1}\n\n: ping\n\ndata: {\"b\":\r\ndata: 2}\r\n\r\ndata: [DONE]\n\n".utf8)
        for cut in 1..<stream.count {
            var splitter = SSEEventSplitter()
            let events = try splitter.feed(stream[..<cut]) + splitter.feed(stream[cut...])
            #expect(events.count == 4)
            #expect(events.flatMap { $0 } == stream)
            #expect(splitter.finish() == nil)
            #expect(SSEEventSplitter.data(of: events[2]) == "{\"b\":\n2}")
            #expect(SSEEventSplitter.data(of: events[1]) == nil)
        }
        var scan = LLMStreamScan(wire: .chatCompletions, clientWantsUsage: false)
        let content = scan.keep(Array("data: {\"choices\":[{\"delta\":{\"content\":\"hey\"}}]}\n\n".utf8))
        let usageOnly = scan.keep(Array("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n".utf8))
        #expect(content)
        #expect(!usageOnly)
        #expect(scan.usage == LLMUsage(promptTokens: 3, completionTokens: 1))
        #expect(scan.contentCharacters == 3)
    }

    @Test func chatRequestsAreCheckedAndRewritten() throws {
        let request = try LLMRequest.parse(
            Data(#"{"model":"local/m","messages":[{"role":"user","content":"hi"}],"stream":true,"temperature":0.5}"#.utf8),
            wire: .chatCompletions)
        #expect(request.stream && !request.clientWantsStreamUsage)
        let body = try request.upstreamBody(model: "m", requestCost: true)
        let object = try JSONSerialization.jsonObject(with: body) as? [String: Any] ?? [:]
        #expect(object["model"] as? String == "m")
        #expect((object["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        #expect((object["usage"] as? [String: Any])?["include"] as? Bool == true)
        #expect(object["temperature"] as? Double == 0.5)
        for bad in [#"[]"#, #"{"model":"m"}"#, #"{"model":"m","messages":[{}]}"#, #"{"model":"m","messages":[{"role":"user"}],"max_tokens":0}"#] {
            #expect(throws: (any Error).self) { try LLMRequest.parse(Data(bad.utf8), wire: .chatCompletions) }
        }
    }

    @Test func llmConfigurationFileAndEnvironment() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/omnirun-llm-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try #"{"upstreams":[{"name":"a","baseURL":"http://127.0.0.1:1/v1","models":["x/*"]}],"prices":{"x/*":{"input":1,"output":2}}}"#
            .write(toFile: directory + "/llm.json", atomically: true, encoding: .utf8)
        let loaded = try LLMConfiguration.load(
            dataDirectory: directory,
            environment: ["OMNIRUN_LLM_UPSTREAM_URL": "https://agg.test/api/v1", "OMNIRUN_LLM_SPEND_CAP_CENTS": "250"])
        #expect(loaded.upstreams.map(\.name) == ["a", "default"])
        #expect(loaded.spendCapCents == 250)
        #expect(loaded.prices["x/*"] == ModelPrice(input: 1, output: 2))
        #expect(loaded.prices["openai/gpt-4o-mini"] != nil, "file prices add to the built-in ones")
        #expect(loaded.freeTier.count == 5)
        try #"{"upstreams":[{"name":"a","baseURL":"ftp://x","models":["*"]}]}"#
            .write(toFile: directory + "/llm.json", atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try LLMConfiguration.load(dataDirectory: directory, environment: [:]) }
        #expect(throws: (any Error).self) {
            try LLMConfiguration.load(dataDirectory: directory, environment: ["OMNIRUN_LLM_CONFIG": directory + "/missing.json"])
        }
    }

    @Test func sandboxEnvironmentPointsAtTheGatewayUnlessTheUserBringsAKey() {
        let env = LLMSandboxEnvironment.variables(userProvided: [:])
        #expect(env["OMNIRUN_LLM_BASE_URL"] == "http://127.0.0.1:18080/llm/v1")
        #expect(env["OPENAI_BASE_URL"] == env["OMNIRUN_LLM_BASE_URL"])
        #expect(env["OPENAI_API_KEY"] != nil)
        #expect(env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:18080/llm")
        #expect(env["ANTHROPIC_AUTH_TOKEN"] != nil && env["ANTHROPIC_API_KEY"] == nil)
        let byok = LLMSandboxEnvironment.variables(userProvided: ["OPENAI_API_KEY": "sk-own"])
        #expect(byok["OPENAI_BASE_URL"] == nil && byok["OPENAI_API_KEY"] == nil)
        #expect(byok["OMNIRUN_LLM_BASE_URL"] != nil && byok["ANTHROPIC_BASE_URL"] != nil)
        for own in ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL"] {
            let anthropic = LLMSandboxEnvironment.variables(userProvided: [own: "mine"])
            #expect(anthropic["ANTHROPIC_BASE_URL"] == nil && anthropic["ANTHROPIC_AUTH_TOKEN"] == nil, "\(own)")
            #expect(anthropic["OPENAI_BASE_URL"] != nil)
        }
    }
}
