import Foundation
import SandboxRuntime
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What no sandbox reaches unless the operator allows it (a "LAN" namespace with a 10.x
/// server and a stand-in of the metadata service on 169.254.169.254, made by the test),
/// and the domain proxy's bounds against a sandbox that pushes more than the far side takes.
@Suite("Egress defaults and the domain proxy's bounds", .serialized, .timeLimit(.minutes(15)))
struct EgressDefaultsTests {
    /// An HTTP GET from inside the sandbox to `address` with `host` (argv), through the
    /// proxy when the sandbox's policy names domains.
    static func fetch(_ client: HTTPTestClient, _ id: String, _ address: String, host: String) async throws -> String {
        try await NetworkServer.run(client, id, "python3 /tmp/get.py \(address) \(host)")
    }

    static func hostReaches(_ address: String, _ port: Int) -> Bool {
        runTool(["/usr/bin/python3", "-c", NetworkStandIn.probeHost, address, "\(port)"]).hasPrefix("open")
    }

    @Test func privateNetworksAndTheMetadataServiceAreRefusedByDefault() async throws {
        let lan = try await NetworkStandIn.lan.value
        let (server, inet, client) = try await NetworkServer.client("private")
        let watch = ProcessWatch(pid: server.process.processIdentifier, disk: server.dataDirectory)
        let before = watch.sample()
        let sampler = Task { await watch.sampleUntilCancelled() }
        // The controls: the host reaches the LAN server and the metadata stand-in.
        #expect(Self.hostReaches(lan.first, 80))
        #expect(Self.hostReaches(NetworkStandIn.metadataAddress, 80))
        let id = try await NetworkServer.create(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        #expect(try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/get.py", "content": NetworkServer.get]).status == 200)
        // The public stand-in answers; the LAN and the metadata service do not (a reset at once).
        #expect(try await NetworkServer.connect(client, id, inet.first, 80) == "open")
        let started = ContinuousClock.now
        for target in [lan.first, NetworkStandIn.metadataAddress] {
            let answer = try await NetworkServer.connect(client, id, target, 80)
            #expect(answer.contains("refused"), "\(target): \(answer)")
        }
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(try await Self.fetch(client, id, NetworkStandIn.metadataAddress, host: "metadata.test").hasPrefix("reset"))
        // A tenant's own allow-list cannot open them.
        let widened = try await client.post(
            "/sandboxes/\(id)/network-policy", ["allowIPs": ["10.0.0.0/8", "169.254.0.0/16", "\(lan.first)/32", inet.first]])
        #expect(widened.status == 200, "\(widened.text)")
        #expect(try await NetworkServer.connect(client, id, inet.first, 80) == "open")
        #expect(try await NetworkServer.connect(client, id, lan.first, 80) != "open")
        #expect(try await NetworkServer.connect(client, id, NetworkStandIn.metadataAddress, 80) != "open")

        // A name that resolves to a private address is no way around it: the proxy refuses it.
        let named = try await NetworkServer.create(client, ["sniProxy": true, "allowDomains": ["lan.test", "metadata.test", "allowed.test"]])
        defer { Task { _ = try? await client.delete("/sandboxes/\(named)") } }
        #expect(try await client.post("/sandboxes/\(named)/files", ["path": "/tmp/get.py", "content": NetworkServer.get]).status == 200)
        #expect(try await client.post("/sandboxes/\(named)/files", ["path": "/tmp/hello.py", "content": NetworkServer.hello]).status == 200)
        #expect(try await Self.fetch(client, named, inet.first, host: "allowed.test").contains("inet-ok host=allowed.test"))
        #expect(try await Self.fetch(client, named, inet.first, host: "lan.test").hasPrefix("reset"))
        #expect(try await Self.fetch(client, named, inet.first, host: "metadata.test").hasPrefix("reset"))
        #expect(try await NetworkServer.run(client, named, "python3 /tmp/hello.py \(inet.first) lan.test").hasPrefix("reset"))
        // Nor does the name's address join the IP rules on other ports.
        #expect(try await NetworkServer.connect(client, named, lan.first, 8443) != "open")
        sampler.cancel()
        let peak = await sampler.value
        print("[figures] private networks from sandboxes: server \(before) → peak \(peak) → after \(watch.sample())")
    }

    @Test func theOperatorAllowsChosenPrivateRanges() async throws {
        let lan = try await NetworkStandIn.lan.value
        let inet = try await NetworkStandIn.shared.value
        let server = try await TestServer.start(
            name: "network-lan",
            environment: try await NetworkServer.environment([
                "OMNIRUN_EGRESS_ALLOW_PRIVATE": "10.205.0.0/16, \(NetworkStandIn.metadataAddress)"
            ]))
        defer { Task { await server.shutdown() } }
        let client = server.client()
        let id = try await NetworkServer.create(client)
        #expect(try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/get.py", "content": NetworkServer.get]).status == 200)
        #expect(try await NetworkServer.connect(client, id, lan.first, 80) == "open")
        #expect(try await Self.fetch(client, id, lan.first, host: "lan.test").contains("lan-ok host=lan.test"))
        #expect(try await Self.fetch(client, id, NetworkStandIn.metadataAddress, host: "x").contains("lan-ok host=x to=169.254.169.254"))
        #expect(try await NetworkServer.connect(client, id, inet.first, 80) == "open")
        // The tenant's policy still applies inside the allowed range.
        #expect(try await client.post("/sandboxes/\(id)/network-policy", ["denyIPs": [lan.first]]).status == 200)
        #expect(try await NetworkServer.connect(client, id, lan.first, 80) != "open")
        #expect(try await NetworkServer.connect(client, id, NetworkStandIn.metadataAddress, 80) == "open")
        // Through the proxy, a name on the allowed range is relayed.
        let named = try await NetworkServer.create(client, ["sniProxy": true, "allowDomains": ["lan.test"]])
        #expect(try await client.post("/sandboxes/\(named)/files", ["path": "/tmp/get.py", "content": NetworkServer.get]).status == 200)
        #expect(try await Self.fetch(client, named, inet.first, host: "lan.test").contains("lan-ok host=lan.test to=\(lan.first)"))
        // A bad setting stops the server with a clear message.
        let bad = try? await TestServer.start(name: "network-bad", environment: ["OMNIRUN_EGRESS_ALLOW_PRIVATE": "10.0.0.0/33"])
        #expect(bad == nil)
        await bad?.shutdown()
        _ = try? await client.delete("/sandboxes/\(id)")
        _ = try? await client.delete("/sandboxes/\(named)")
    }

    /// Pushes as much as it can to `name` through the proxy on 443 for some seconds;
    /// prints the bytes sent and whether sending stalled (back-pressure) or failed.
    static let push = """
        import socket, ssl, sys, time
        target, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
        bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ssl.create_default_context().wrap_bio(bio_in, bio_out, server_hostname=name)
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        s = socket.create_connection((target, 443), timeout=5)
        s.sendall(bio_out.read())
        s.settimeout(4)
        chunk = b"x" * 65536
        sent, outcome, deadline = 0, "flowing", time.time() + seconds
        while time.time() < deadline:
            try:
                sent += s.send(chunk)
            except socket.timeout:
                outcome = "stalled"
                break
            except OSError as e:
                outcome = "closed"
                break
        print("sent", sent, outcome)
        """

    @Test func theDomainProxyHoldsASandboxThatPushesFasterThanTheFarSideReads() async throws {
        let inet = try await NetworkStandIn.shared.value
        let server = try await TestServer.start(name: "network-pressure", environment: try await NetworkServer.environment())
        defer { Task { await server.shutdown() } }
        let client = server.client()
        let id = try await NetworkServer.create(client, ["sniProxy": true, "allowDomains": ["sink.test", "blackhole.test"]])
        #expect(try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/push.py", "content": Self.push]).status == 200)
        let pid = server.process.processIdentifier
        for (name, seconds) in [("sink.test", 20), ("blackhole.test", 8)] {
            let watch = ProcessWatch(pid: pid, disk: server.dataDirectory)
            let before = watch.sample()
            let sampler = Task { await watch.sampleUntilCancelled() }
            let output = try await NetworkServer.run(client, id, "python3 /tmp/push.py \(inet.first) \(name) \(seconds)")
            sampler.cancel()
            let peak = await sampler.value
            try await Task.sleep(for: .seconds(1))
            let after = watch.sample()
            let sent = Int(output.split(separator: " ").dropFirst().first ?? "") ?? -1
            print("[figures] proxy push to \(name): \(output.trimmingCharacters(in: .whitespacesAndNewlines)); server \(before) → peak \(peak) → after \(after)")
            // Sending stalls once the kernel's buffers on the way are full: a few MiB, not
            // what the guest could send in that time, and none of it in the server's memory.
            #expect(sent >= 0 && sent < 48 << 20, "\(name): \(output)")
            #expect(!output.contains("flowing"), "\(name): \(output)")
            #expect(peak.rssKiB - before.rssKiB < 48 << 10, "\(name): RSS \(before.rssKiB) → \(peak.rssKiB) KiB")
        }
        // The server keeps answering, and the sandbox too.
        #expect(try await client.get("/sandboxes/\(id)").status == 200)
        #expect(try await NetworkServer.run(client, id, "echo still-here").contains("still-here"))
        _ = try? await client.delete("/sandboxes/\(id)")
    }
}

/// The server's descriptors, resident memory and data folder's disk use, sampled.
struct ProcessWatch: Sendable {
    struct Sample: Sendable, CustomStringConvertible {
        var descriptors: Int
        var rssKiB: Int
        var diskKiB: Int
        var description: String { "fds \(descriptors), RSS \(rssKiB / 1024) MiB, disk \(diskKiB / 1024) MiB" }
    }

    let pid: Int32
    let disk: String

    func sample() -> Sample {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? -1
        let du = runTool(["/usr/bin/du", "-sk", disk]).split(separator: "\t").first.flatMap { Int($0) } ?? -1
        return Sample(descriptors: fds, rssKiB: rss, diskKiB: du)
    }

    /// The largest of each, every 200 ms until cancelled.
    func sampleUntilCancelled() async -> Sample {
        var peak = sample()
        while !Task.isCancelled {
            let now = sample()
            peak = Sample(
                descriptors: max(peak.descriptors, now.descriptors), rssKiB: max(peak.rssKiB, now.rssKiB),
                diskKiB: max(peak.diskKiB, now.diskKiB))
            try? await Task.sleep(for: .milliseconds(200))
        }
        return peak
    }
}
