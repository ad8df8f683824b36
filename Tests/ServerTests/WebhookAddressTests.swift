import Foundation
import NIOConcurrencyHelpers
import Testing
import TestSupport

@testable import OmniRunControl
@testable import OmniRunServer

#if canImport(Glibc)
import Glibc
#endif

/// Webhook deliveries go to the address that passed the check, never to a second
/// lookup's answer (DNS rebinding); private targets are refused unless allowed; and a
/// recorded failure does not tell a closed port from a silent one.
@Suite("Webhook addresses", .serialized, .timeLimit(.minutes(5)))
struct WebhookAddressTests {
    /// A resolver that answers from a list, one answer per lookup (the last repeats), and counts lookups.
    final class StandInResolver: Sendable {
        private let answers: [[String]]
        private let calls = NIOLockedValueBox(0)

        init(_ answers: [[String]]) {
            self.answers = answers
        }

        var lookups: Int { calls.withLockedValue { $0 } }

        func resolve(_ host: String) async throws -> [[UInt8]] {
            let index = calls.withLockedValue { count in
                count += 1
                return count - 1
            }
            return answers[min(index, answers.count - 1)].compactMap(WebhookAddressPolicy.parse)
        }
    }

    static func policy(_ resolver: StandInResolver, allowLoopback: Bool = false, allow: String = "") throws -> WebhookAddressPolicy {
        WebhookAddressPolicy(
            allowLoopback: allowLoopback, allowedPrivate: try WebhookAddressPolicy.ranges(allow),
            resolver: { try await resolver.resolve($0) })
    }

    static func receiver() async throws -> (HelperProcess, String) {
        let log = TestRuntime.dataDirectory + "/webhook-rebind-\(getpid())-\(UUID().uuidString.prefix(6)).jsonl"
        let receiver = try await HelperProcess.start(
            try Python.interpreter(importing: "json"), [Python.script("webhook-receiver.py"), "--log", log], logPath: log + ".stderr")
        return (receiver, log)
    }

    @Test func aNameIsResolvedOnceAndTheCheckedAddressIsTheOneConnectedTo() async throws {
        let inet = try await NetworkStandIn.shared.value
        let (receiver, log) = try await Self.receiver()
        defer { receiver.stop() }
        // A rebinding name, new for each delivery: public-looking at the first lookup (the
        // stand-in internet), loopback at any later one (where a receiver logs whatever
        // reaches it).
        let watch = ProcessWatch(pid: getpid(), disk: TestRuntime.dataDirectory + "/servers")
        let before = watch.sample()
        var lookups: [Int] = []
        for attempt in 0..<4 {
            let resolver = StandInResolver([[inet.first], ["127.0.0.1"]])
            let outcome = await WebhookSender(policy: try Self.policy(resolver)).send(
                url: "http://rebind.test:\(receiver.port)/hook", headers: [("Content-Type", "application/json")], body: Array("{}".utf8))
            // The stand-in does not listen on the receiver's port: the attempt fails (after
            // the HTTP client's connection retries, ~5 s), at the checked address.
            #expect(outcome.address == inet.first, "attempt \(attempt): \(outcome)")
            #expect(outcome.failure == WebhookSender.noAnswer, "\(outcome)")
            lookups.append(resolver.lookups)
        }
        let resolver = StandInResolver([[inet.first], ["127.0.0.1"]])
        let port80 = await WebhookSender(policy: try Self.policy(resolver)).send(url: "http://rebind.test/hook", headers: [], body: Array("{}".utf8))
        #expect(port80.status == 200 && port80.failure == nil && port80.address == inet.first, "\(port80)")
        lookups.append(resolver.lookups)
        try await Task.sleep(for: .milliseconds(300))
        let after = watch.sample()
        print("[figures] webhook rebinding: 5 deliveries, test process \(before) → \(after)")
        // One lookup per delivery, and nothing ever reached loopback.
        #expect(lookups == Array(repeating: 1, count: 5))
        // The next lookup (another delivery) gets loopback, and is refused.
        let rebound = await WebhookSender(policy: try Self.policy(resolver)).send(url: "http://rebind.test/hook", headers: [], body: [])
        #expect(rebound.address == nil && rebound.failure?.contains("refused") == true, "\(rebound)")
        #expect(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").isEmpty)
        #expect(after.descriptors - before.descriptors < 10, "descriptors \(before.descriptors) → \(after.descriptors)")

        // With loopback allowed, the request arrives with the URL's own Host.
        let loopback = StandInResolver([["127.0.0.1"], ["127.0.0.2"]])
        let local = WebhookSender(policy: try Self.policy(loopback, allowLoopback: true))
        let delivered = await local.send(url: "http://hooks.test:\(receiver.port)/in", headers: [], body: Array("{}".utf8))
        #expect(delivered.status == 204 && delivered.address == "127.0.0.1", "\(delivered)")
        let line = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(line.contains("\"host\": \"hooks.test:\(receiver.port)\""), "\(line)")
    }

    @Test func privateAnswersAreRefusedUnlessAllowed() async throws {
        let (receiver, log) = try await Self.receiver()
        defer { receiver.stop() }
        let cases: [([String], String)] = [
            (["10.1.2.3"], "RFC 1918"), (["192.168.1.1"], "RFC 1918"), (["172.16.0.1"], "RFC 1918"),
            (["100.64.0.1"], "CGNAT"), (["169.254.169.254"], "metadata"), (["127.0.0.1"], "loopback"),
            (["::1"], "IPv6 loopback"), (["fd00::1"], "unique local"), (["fe80::1"], "IPv6 link-local"),
            (["::ffff:10.0.0.1"], "mapped"), (["198.18.0.1", "127.0.0.1"], "a public and a private answer"),
            (["0.0.0.0"], "unspecified"), (["224.0.0.1"], "multicast"),
        ]
        for (answer, label) in cases {
            let resolver = StandInResolver([answer])
            let outcome = await WebhookSender(policy: try Self.policy(resolver))
                .send(url: "http://private.test:\(receiver.port)/x", headers: [], body: [])
            #expect(outcome.address == nil && outcome.status == nil, "\(label): \(outcome)")
            #expect(outcome.failure?.contains("refused") == true, "\(label): \(outcome)")
        }
        // Literal addresses are refused when the webhook is made.
        let strict = try Self.policy(StandInResolver([[]]))
        for host in ["10.0.0.1", "192.168.0.10", "[fd12::3]", "100.100.100.100", "169.254.169.254", "localhost"] {
            #expect(throws: (any Error).self, "\(host)") { try strict.check(host: host) }
        }
        #expect(throws: Never.self) { try strict.check(host: "203.0.113.9") }
        // The operator's ranges open exactly themselves.
        let allowing = try Self.policy(StandInResolver([["127.0.0.1"]]), allow: "127.0.0.0/8, fd00::/8")
        #expect(throws: Never.self) { try allowing.check(host: "[fd00::5]") }
        #expect(throws: (any Error).self) { try allowing.check(host: "10.0.0.1") }
        let delivered = await WebhookSender(policy: allowing).send(url: "http://lan.test:\(receiver.port)/ok", headers: [], body: [])
        #expect(delivered.status == 204, "\(delivered)")
        #expect(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("/ok"))
        #expect(throws: (any Error).self) { try WebhookAddressPolicy.ranges("10.0.0.0/33") }
        #expect(throws: (any Error).self) { try WebhookAddressPolicy.ranges("not-an-address") }
    }

    /// Listeners on loopback: one closed port, one that accepts and hangs up, one that
    /// accepts and never answers, one that answers garbage. Every failure reads the same.
    @Test func failuresDoNotTellAClosedPortFromASilentOne() async throws {
        let script = """
            import socket, sys, threading, time
            def serve(listener, behaviour):
                held = []
                while True:
                    conn, _ = listener.accept()
                    if behaviour == "hangup":
                        conn.close()
                    elif behaviour == "garbage":
                        conn.recv(4096)
                        conn.sendall(b"SSH-2.0-OpenSSH_9.2\\r\\n")
                        conn.close()
                    else:
                        held.append(conn)
            ports = []
            for behaviour in ("hangup", "silent", "garbage"):
                listener = socket.socket()
                listener.bind(("127.0.0.1", 0))
                listener.listen(8)
                ports.append(listener.getsockname()[1])
                threading.Thread(target=serve, args=(listener, behaviour), daemon=True).start()
            closed = socket.socket()
            closed.bind(("127.0.0.1", 0))
            ports.append(closed.getsockname()[1])
            closed.close()
            print("ready", ",".join(map(str, ports)), flush=True)
            sys.stdin.read()
            """
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ports-\(getpid()).py").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [path]
        let output = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardInput = input
        try process.run()
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        var text = ""
        while !text.contains("\n") { text += String(decoding: output.fileHandleForReading.availableData, as: UTF8.self) }
        let ports = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").last?.split(separator: ",").compactMap { Int($0) } ?? []
        try #require(ports.count == 4)
        let sender = WebhookSender(policy: try Self.policy(StandInResolver([["127.0.0.1"]]), allowLoopback: true))
        let watch = ProcessWatch(pid: getpid(), disk: TestRuntime.dataDirectory + "/servers")
        let before = watch.sample()
        var failures: [String] = []
        for (port, label) in zip(ports, ["hangs up", "never answers", "answers garbage", "closed"]) {
            let outcome = await sender.send(url: "http://probe.test:\(port)/", headers: [], body: [])
            print("[figures] webhook to a port that \(label): \(outcome.failure ?? "delivered")")
            #expect(outcome.status == nil, "\(label): \(outcome)")
            failures.append(outcome.failure ?? "")
        }
        #expect(Set(failures) == [WebhookSender.noAnswer], "\(failures)")
        print("[figures] webhook port probes: test process \(before) → \(watch.sample())")
    }

    @Test func aServerRefusesPrivateReceiversUnlessItsOperatorAllowsThem() async throws {
        let strict = try await TestServer.start(name: "webhooks-private")
        let client = strict.client()
        for url in ["http://10.1.2.3/x", "http://192.168.1.1/x", "http://[fd00::1]/x", "http://100.64.0.1/x", "http://172.31.255.255/x"] {
            let refused = try await client.post("/webhooks", ["url": url, "events": ["created"]])
            #expect(refused.status == 400 && (refused.object["message"] as? String ?? "").contains("private"), "\(url): \(refused.text)")
        }
        await strict.shutdown()
        let open = try await TestServer.start(name: "webhooks-lan", environment: ["OMNIRUN_WEBHOOK_ALLOW_PRIVATE": "10.1.0.0/16"])
        let allowed = try await open.client().post("/webhooks", ["url": "http://10.1.2.3/x", "events": ["created"]])
        #expect(allowed.status == 201, "\(allowed.text)")
        let still = try await open.client().post("/webhooks", ["url": "http://10.2.0.1/x", "events": ["created"]])
        #expect(still.status == 400)
        await open.shutdown()
    }
}
