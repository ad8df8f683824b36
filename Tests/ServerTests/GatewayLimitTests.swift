import Foundation
import NIOConcurrencyHelpers
import Testing
import TestSupport

/// The host gateway under a hostile guest: code in a sandbox opening far more connections
/// to `127.0.0.1:18080` than the host serves. The host serves 64 at a time per sandbox
/// (the default) and closes those idle for 8 s (this server's setting).
@Suite("Host gateway limits", .serialized, .timeLimit(.minutes(15)))
struct GatewayLimitTests {
    static let idleTimeout = 8.0
    static let cap = 64

    static let server = Task<TestServer, any Error> {
        try await TestServer.start(
            name: "gateway-limits", environment: ["OMNIRUN_IDLE_TIMEOUT": "600", "OMNIRUN_GATEWAY_IDLE_TIMEOUT": "\(idleTimeout)"])
    }

    static func client(_ label: String) async throws -> (TestServer, HTTPTestClient) {
        let server = try await server.value
        return (server, server.client(key: try server.createKey(email: "\(label)-\(UUID().uuidString.prefix(8))@test.local")))
    }

    static func run(_ client: HTTPTestClient, _ id: String, _ script: String, timeout: Int = 180) async throws -> HTTPTestClient.Reply {
        #expect(try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/attack.py", "content": script]).status == 200)
        return try await client.request(
            "POST", "/sandboxes/\(id)/commands", json: ["command": "python3 /tmp/attack.py", "timeout": timeout],
            timeout: TimeInterval(timeout + 60))
    }

    /// A hundred guest connections each asking for the model list at once and then keeping
    /// the connection: when each got its answer and when the host closed it.
    static let heldConnections = """
        import json, select, socket, time
        N = 100
        start = time.time()
        socks = []
        for i in range(N):
            s = socket.create_connection(("127.0.0.1", 18080))
            s.sendall(b"GET /llm/v1/models HTTP/1.1\\r\\nHost: gateway\\r\\n\\r\\n")
            s.setblocking(False)
            socks.append(s)
        answered, closed, status, got = [None] * N, [None] * N, [None] * N, [b""] * N
        while time.time() < start + 120 and any(c is None for c in closed):
            live = [s for i, s in enumerate(socks) if closed[i] is None]
            ready, _, _ = select.select(live, [], [], 0.5)
            for s in ready:
                i = socks.index(s)
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                now = time.time() - start
                if data:
                    got[i] += data
                    if answered[i] is None and b"\\r\\n\\r\\n" in got[i]:
                        answered[i] = now
                        status[i] = int(got[i].split(b" ")[1])
                else:
                    closed[i] = now
                    s.close()
        print(json.dumps({"answered": answered, "closed": closed, "status": status}))
        """

    @Test func aSandboxIsServedAtMostItsCapAndIdleConnectionsClose() async throws {
        let (server, client) = try await Self.client("gateway-cap")
        let id = try await createSandbox(client, ["template": "playground", "timeout": 1800])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let watch = ServerWatch(server)
        let run = try await Self.run(client, id, Self.heldConnections)
        let figures = await watch.finish()
        #expect(run.object["exit_code"] as? Int == 0, "\(run.text)")
        let result = (try? JSONSerialization.jsonObject(with: Data((run.object["stdout"] as? String ?? "").utf8))) as? [String: Any] ?? [:]
        let answered = (result["answered"] as? [Any] ?? []).map { $0 as? Double }
        let closed = (result["closed"] as? [Any] ?? []).map { $0 as? Double }
        let statuses = (result["status"] as? [Any] ?? []).map { $0 as? Int }
        try #require(answered.count == 100 && closed.count == 100, "\(run.text)")
        // Every connection is served in the end, 200 each.
        #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses)")
        #expect(answered.allSatisfy { $0 != nil } && closed.allSatisfy { $0 != nil }, "\(result)")
        let intervals = zip(answered, closed).compactMap { pair -> (Double, Double)? in
            guard let start = pair.0, let end = pair.1 else { return nil }
            return (start, end)
        }
        // Never more than the cap at once; the cap is reached (all 100 asked at once).
        var events = intervals.flatMap { [($0.0, 1), ($0.1, -1)] }
        events.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        var current = 0
        var most = 0
        for event in events {
            current += event.1
            most = max(most, current)
        }
        #expect(most == Self.cap, "at most \(most) connections were served at once")
        let firstClose = intervals.map(\.1).min() ?? 0
        #expect(intervals.filter { $0.0 < firstClose }.count == Self.cap, "answered before the first close")
        // Each served connection, idle after its answer, is closed by the host after the idle
        // timeout: never before it (all were asked for at 0 s), typically just after its answer
        // (the guest, starved of CPU on a loaded host, may see the answer late).
        let idle = intervals.map { $0.1 - $0.0 }.sorted()
        for (answeredAt, closedAt) in intervals {
            #expect(closedAt >= Self.idleTimeout - 1 && closedAt - answeredAt < Self.idleTimeout + 15, "\(answeredAt) → \(closedAt)")
        }
        #expect(idle.isEmpty || idle[idle.count / 2] >= Self.idleTimeout - 1, "idle before the close: \(idle)")
        // Host side: two descriptors per served connection at most.
        #expect(figures.peak.descriptors <= figures.before.descriptors + 2 * Self.cap + 40, "\(figures.peak)")
        ServerWatch.record(
            "host gateway: 100 kept-alive guest connections (cap \(Self.cap), idle \(Int(Self.idleTimeout)) s)", figures,
            outcome: "bounded: at most \(most) served at once, each closed \(Int(Self.idleTimeout)) s after its answer, all 100 answered")
    }

    /// Tens of thousands of connections, a third with a head that never ends, at most 3000
    /// held at once (the oldest closed first), for 100 s or 30000 connections (a guest under
    /// emulation opens about 200 a second).
    static let flood = """
        import json, resource, socket, time
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
        except (ValueError, OSError):
            pass
        hold = min(3000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 64)
        start = time.time()
        opened = errors = peak = 0
        held = []
        while time.time() < start + 100 and opened < 30000:
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", 18080))
                if opened % 3 == 0:
                    s.send(b"GET /llm/v1/models HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: ")
                held.append(s)
                opened += 1
            except OSError:
                errors += 1
                s.close()
            if len(held) > hold:
                for old in held[:500]:
                    old.close()
                held = held[500:]
            peak = max(peak, len(held))
        print(json.dumps({"opened": opened, "errors": errors, "peakHeld": peak, "seconds": round(time.time() - start, 1)}))
        """

    @Test func aFloodOfGuestConnectionsLeavesTheHostBoundedAndOthersServed() async throws {
        let (server, attacker) = try await Self.client("gateway-flood")
        let (_, neighbour) = try await Self.client("gateway-neighbour")
        let target = try await createSandbox(attacker, ["template": "playground", "timeout": 1800])
        let other = try await createSandbox(neighbour, ["template": "playground", "timeout": 1800])
        defer {
            Task {
                _ = try? await attacker.delete("/sandboxes/\(target)")
                _ = try? await neighbour.delete("/sandboxes/\(other)")
            }
        }
        let curl = "curl -s -m 30 -o /dev/null -w '%{http_code}' http://127.0.0.1:18080/llm/v1/models"
        #expect(try await neighbour.post("/sandboxes/\(other)/commands", ["command": curl, "timeout": 60]).object["stdout"] as? String == "200")

        let watch = ServerWatch(server)
        let done = NIOLockedValueBox(false)
        // Meanwhile: another tenant's API calls and another sandbox's gateway calls.
        let api = Task {
            var statuses: [Int] = []
            var slowest = 0.0
            while !done.withLockedValue({ $0 }) {
                let started = ContinuousClock.now
                statuses.append((try? await neighbour.request("GET", "/sandboxes", timeout: 30))?.status ?? -1)
                slowest = max(slowest, LoadClients.seconds(ContinuousClock.now - started))
                try? await Task.sleep(for: .milliseconds(250))
            }
            return (statuses, slowest)
        }
        let gateway = Task {
            var answers: [String] = []
            while !done.withLockedValue({ $0 }) {
                let reply = try? await neighbour.request(
                    "POST", "/sandboxes/\(other)/commands", json: ["command": curl, "timeout": 60], timeout: 90)
                let stdout = reply?.object["stdout"] as? String
                answers.append(stdout == "200" ? "200" : "\(reply?.status ?? -1): \(reply?.text ?? "no answer")")
                try? await Task.sleep(for: .milliseconds(500))
            }
            return answers
        }
        let run = try await Self.run(attacker, target, Self.flood)
        done.withLockedValue { $0 = true }
        let (statuses, slowest) = await api.value
        let answers = await gateway.value
        let figures = await watch.finish(settle: .seconds(Self.idleTimeout * 4))

        #expect(run.object["exit_code"] as? Int == 0, "\(run.text)")
        let result = (try? JSONSerialization.jsonObject(with: Data((run.object["stdout"] as? String ?? "").utf8))) as? [String: Any] ?? [:]
        let opened = result["opened"] as? Int ?? 0
        // About 20000 on a quiet machine, 10000 when other tests share the CPU; without the cap
        // each held one cost the server two descriptors (measured: 5700 for 2900 held).
        #expect(opened >= 5000, "the guest opened only \(opened) connections: \(run.text)")
        #expect(!statuses.isEmpty && statuses.allSatisfy { $0 == 200 }, "\(statuses)")
        #expect(slowest < 10, "another tenant's call took \(slowest) s")
        #expect(!answers.isEmpty && answers.allSatisfy { $0 == "200" }, "\(answers)")
        #expect(figures.peak.descriptors <= figures.before.descriptors + 2 * Self.cap + 60, "\(figures.peak)")
        #expect(figures.after.descriptors <= figures.before.descriptors + 8, "\(figures.after)")
        // The attacker's own gateway works again once its connections are gone.
        #expect(try await attacker.post("/sandboxes/\(target)/commands", ["command": curl, "timeout": 60]).object["stdout"] as? String == "200")
        ServerWatch.record(
            "host gateway flood: \(opened) guest connections in \(result["seconds"] ?? "?") s, up to \(result["peakHeld"] ?? "?") held at once", figures,
            outcome: "bounded: another tenant's \(statuses.count) API calls all 200 (slowest \(String(format: "%.2f", slowest)) s), another sandbox's \(answers.count) gateway calls all 200")
    }
}
