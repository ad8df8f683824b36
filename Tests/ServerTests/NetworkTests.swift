import Foundation
import SandboxRuntime
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One server for the network tests, whose guests' DNS goes to the stand-in's resolver
/// and whose policy names resolve to the stand-ins' addresses.
enum NetworkServer {
    static let server = Task<(TestServer, NetworkStandIn), any Error> {
        let inet = try await NetworkStandIn.shared.value
        let server = try await TestServer.start(name: "network", environment: try await environment())
        return (server, inet)
    }

    /// DNS to the stand-in internet, and the names tests use: `allowed.test`, `denied.test`
    /// (the internet), `sink.test` (a far side that never reads), `blackhole.test` (an
    /// address where nothing answers), `lan.test` and `metadata.test` (private).
    static func environment(_ extra: [String: String] = [:]) async throws -> [String: String] {
        let inet = try await NetworkStandIn.shared.value
        let lan = try await NetworkStandIn.lan.value
        let blackhole = inet.first.split(separator: ".").dropLast().joined(separator: ".") + ".9"
        let hosts = [
            "allowed.test=\(inet.second)", "denied.test=\(inet.first)", "sink.test=\(inet.sink ?? "")",
            "blackhole.test=\(blackhole)", "lan.test=\(lan.first)", "metadata.test=\(NetworkStandIn.metadataAddress)",
        ]
        return ["OMNIRUN_NETWORK_DNS": inet.first, "OMNIRUN_NETWORK_HOSTS": hosts.joined(separator: ",")].merging(extra) { $1 }
    }

    static func client(_ label: String) async throws -> (TestServer, NetworkStandIn, HTTPTestClient) {
        let (server, inet) = try await server.value
        let key = try server.createKey(email: "\(label)-\(UUID().uuidString.prefix(8))@test.local")
        return (server, inet, server.client(key: key))
    }

    /// Connects from the guest: `open`, or why not.
    static let probe = """
        import socket, sys
        try:
            socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
            print("open")
        except OSError as e:
            print("closed", e)
        """

    /// Sends a TLS ClientHello for a server name (argv: address, name) and prints what comes back.
    static let hello = """
        import socket, ssl, sys
        bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ssl.create_default_context().wrap_bio(bio_in, bio_out, server_hostname=sys.argv[2])
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        try:
            s = socket.create_connection((sys.argv[1], 443), timeout=5)
            s.sendall(bio_out.read())
            data = s.recv(100)
            print("got " + data.decode() if data else "reset (closed)")
        except OSError as e:
            print("reset", e)
        """

    /// An HTTP GET to port 80 of an address with a given Host (argv: address, host).
    static let get = """
        import socket, sys
        try:
            s = socket.create_connection((sys.argv[1], 80), timeout=5)
            s.sendall(("GET / HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n" % sys.argv[2]).encode())
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            print("got " + data.decode() if data else "reset (closed)")
        except OSError as e:
            print("reset", e)
        """

    static func run(_ client: HTTPTestClient, _ id: String, _ command: String) async throws -> String {
        let reply = try await client.post("/sandboxes/\(id)/commands", ["command": command, "timeout": 60])
        #expect(reply.status == 200, "\(reply.text)")
        return (reply.object["stdout"] as? String ?? "") + (reply.object["stderr"] as? String ?? "")
    }

    static func connect(_ client: HTTPTestClient, _ id: String, _ host: String, _ port: Int) async throws -> String {
        try await run(client, id, "python3 /tmp/probe.py \(host) \(port)").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A sandbox with internet access and the probe script in it.
    static func create(_ client: HTTPTestClient, _ extra: [String: Any] = [:]) async throws -> String {
        var body: [String: Any] = ["template": "playground", "timeout": 600, "internet": true]
        body.merge(extra) { $1 }
        let id = try await createSandbox(client, body)
        #expect(try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/probe.py", "content": probe]).status == 200)
        return id
    }

    static func namespaces(_ server: TestServer) -> [String] {
        let prefix = HostNetwork.namespacePrefix(tag: server.networkTag)
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { $0.hasPrefix(prefix) }
    }
}

@Suite("Internet access and egress policies", .serialized, .timeLimit(.minutes(10)))
struct NetworkTests {
    @Test func internetReachesTheStandInWithDNS() async throws {
        let (_, inet, client) = try await NetworkServer.client("reach")
        let id = try await NetworkServer.create(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let links = try await NetworkServer.run(client, id, "ls /sys/class/net")
        #expect(links == "eth0\nlo\n")
        #expect(try await NetworkServer.run(client, id, "cat /etc/resolv.conf").contains("nameserver 10.0.2.2"))
        let page = try await NetworkServer.run(
            client, id, "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://\(inet.first)/', timeout=5).read().decode())\"")
        #expect(page.contains("inet-ok host=\(inet.first)"), "\(page)")
        // DNS queries to the gateway reach the configured resolver (the stand-in echoes them).
        let dns = try await NetworkServer.run(
            client, id,
            "python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); s.sendto(b'q', ('10.0.2.2', 53)); print(s.recvfrom(100)[0].decode())\"")
        #expect(dns.contains("dns-echo:q"), "\(dns)")
        // An air-gapped sandbox of the same server still has no card at all.
        let airGapped = try await createSandbox(client, ["template": "playground", "timeout": 300])
        defer { Task { _ = try? await client.delete("/sandboxes/\(airGapped)") } }
        #expect(try await NetworkServer.run(client, airGapped, "ls /sys/class/net") == "lo\n")
    }

    @Test func sandboxesReachNeitherEachOtherNorTheHost() async throws {
        let (server, inet, client) = try await NetworkServer.client("isolation")
        let first = try await NetworkServer.create(client)
        let second = try await NetworkServer.create(client)
        defer {
            Task {
                _ = try? await client.delete("/sandboxes/\(first)")
                _ = try? await client.delete("/sandboxes/\(second)")
            }
        }
        // A listener inside the second sandbox's namespace, reachable from the host (the control).
        let secondNamespace = HostNetwork.namespacePrefix(tag: server.networkTag) + second
        let secondAddress = runTool(["/usr/sbin/ip", "-n", secondNamespace, "-o", "-4", "addr", "show", "dev", "eth0"])
            .split(separator: " ").first { $0.hasPrefix("10.203.") }.map { String($0.split(separator: "/")[0]) } ?? ""
        #expect(!secondAddress.isEmpty)
        let listener = Process()
        listener.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        listener.arguments = ["--net=/run/netns/\(secondNamespace)", "/usr/bin/python3", "-m", "http.server", "--bind", secondAddress, "8081"]
        listener.standardOutput = FileHandle.nullDevice
        listener.standardError = FileHandle.nullDevice
        try listener.run()
        defer {
            kill(listener.processIdentifier, SIGKILL)
            listener.waitUntilExit()
        }
        // A listener on the host itself, on every address.
        let hostListener = Process()
        hostListener.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        hostListener.arguments = ["-m", "http.server", "--bind", "0.0.0.0", "18089"]
        hostListener.standardOutput = FileHandle.nullDevice
        hostListener.standardError = FileHandle.nullDevice
        try hostListener.run()
        defer {
            kill(hostListener.processIdentifier, SIGKILL)
            hostListener.waitUntilExit()
        }
        // The controls: the host reaches both listeners (once they listen).
        func reachable(_ host: String, _ port: Int) async throws -> Bool {
            for _ in 0..<50 {
                if runTool(["/usr/bin/python3", "-c", NetworkStandIn.probeHost, host, "\(port)"]).hasPrefix("open") { return true }
                try await Task.sleep(for: .milliseconds(200))
            }
            return false
        }
        #expect(try await reachable(secondAddress, 8081))
        #expect(try await reachable(inet.hostAddress, 18089))

        #expect(try await NetworkServer.connect(client, first, inet.first, 80) == "open")
        #expect(try await NetworkServer.connect(client, first, secondAddress, 8081) != "open")
        // The host, by its address on the sandbox's own link, on the stand-in's link and on its uplink.
        let firstNamespace = HostNetwork.namespacePrefix(tag: server.networkTag) + first
        let gateway = runTool(["/usr/sbin/ip", "-n", firstNamespace, "route", "show", "default"]).split(separator: " ").dropFirst(2).first
            .map(String.init) ?? ""
        #expect(gateway.hasPrefix("10.203."))
        #expect(try await NetworkServer.connect(client, first, gateway, 18089) != "open")
        #expect(try await NetworkServer.connect(client, first, inet.hostAddress, 18089) != "open")
        let uplink = runTool(["/usr/sbin/ip", "-o", "-4", "route", "get", "1.1.1.1"]).split(separator: " ")
        if let index = uplink.firstIndex(of: "src"), index + 1 < uplink.count {
            #expect(try await NetworkServer.connect(client, first, String(uplink[index + 1]), 18089) != "open")
        }
    }

    @Test func ipPolicyAtCreateAndLive() async throws {
        let (_, inet, client) = try await NetworkServer.client("ips")
        let id = try await NetworkServer.create(client, ["network": ["allowIPs": [inet.first]]])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        #expect(try await NetworkServer.connect(client, id, inet.first, 80) == "open")
        #expect(try await NetworkServer.connect(client, id, inet.second, 80) != "open")
        // A live change: the next connections follow it.
        let changed = try await client.post("/sandboxes/\(id)/network-policy", ["denyIPs": ["\(inet.first)/32"]])
        #expect(changed.status == 200, "\(changed.text)")
        #expect(try await NetworkServer.connect(client, id, inet.first, 80) != "open")
        #expect(try await NetworkServer.connect(client, id, inet.second, 80) == "open")
        // A CIDR allow-list.
        #expect(try await client.post("/sandboxes/\(id)/network-policy", ["allowIPs": ["198.18.0.0/15"]]).status == 200)
        #expect(try await NetworkServer.connect(client, id, inet.second, 443) == "open")
        // Bad entries are a 400; a sandbox without internet access a 409.
        let bad = try await client.post("/sandboxes/\(id)/network-policy", ["allowIPs": ["not-an-ip"]])
        #expect(bad.status == 400 && bad.object["error"] as? String == "invalid_argument", "\(bad.text)")
        let v6 = try await client.post("/sandboxes/\(id)/network-policy", ["denyIPs": ["::1"]])
        #expect(v6.status == 400)
        let airGapped = try await createSandbox(client, ["template": "playground", "timeout": 300])
        defer { Task { _ = try? await client.delete("/sandboxes/\(airGapped)") } }
        let refused = try await client.post("/sandboxes/\(airGapped)/network-policy", ["allowIPs": [inet.first]])
        #expect(refused.status == 409, "\(refused.text)")
    }

    /// A sandbox with internet access pauses (its namespace is given back) and resumes
    /// with a new one under the policy it last had; `autoPause` is accepted with it.
    @Test func pauseAndResumeKeepTheCardAndThePolicy() async throws {
        let (server, inet, client) = try await NetworkServer.client("pause")
        let id = try await NetworkServer.create(client, ["network": ["allowIPs": [inet.first]], "autoPause": true])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let namespace = HostNetwork.namespacePrefix(tag: server.networkTag) + id
        // The policy set live (not the one at create) is the one that comes back.
        #expect(try await client.post("/sandboxes/\(id)/network-policy", ["allowIPs": [inet.second]]).status == 200)
        #expect(try await NetworkServer.connect(client, id, inet.second, 80) == "open")
        #expect(try await NetworkServer.connect(client, id, inet.first, 80) != "open")
        let pause = try await client.post("/sandboxes/\(id)/pause")
        #expect(pause.status == 200 && pause.object["status"] as? String == "paused", "\(pause.text)")
        #expect(!NetworkServer.namespaces(server).contains(namespace))
        let resume = try await client.post("/sandboxes/\(id)/resume")
        #expect(resume.status == 200 && resume.object["status"] as? String == "running", "\(resume.text)")
        #expect(NetworkServer.namespaces(server).contains(namespace))
        // The probe written before the pause is still there; the card and the policy work.
        #expect(try await NetworkServer.run(client, id, "ls /sys/class/net") == "eth0\nlo\n")
        #expect(try await NetworkServer.connect(client, id, inet.second, 80) == "open")
        #expect(try await NetworkServer.connect(client, id, inet.first, 80) != "open")
        #expect(try await client.post("/sandboxes/\(id)/network-policy", ["allowIPs": [inet.first]]).status == 200)
        #expect(try await NetworkServer.connect(client, id, inet.first, 80) == "open")
        #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        #expect(!NetworkServer.namespaces(server).contains(namespace))
    }

    /// Internet access is off unless asked for: a policy that only denies leaves the
    /// sandbox air-gapped; an allow-list with `internet: false` is a contradiction (400).
    @Test func aDenyOnlyPolicyDoesNotTurnTheInternetOn() async throws {
        let (server, inet, client) = try await NetworkServer.client("deny-only")
        let before = NetworkServer.namespaces(server).count
        let id = try await createSandbox(client, ["template": "playground", "timeout": 300, "network": ["denyIPs": [inet.first]]])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        #expect(try await NetworkServer.run(client, id, "ls /sys/class/net") == "lo\n")
        #expect(NetworkServer.namespaces(server).count == before)
        let gapped = try await createSandbox(
            client, ["template": "playground", "timeout": 300, "internet": false, "network": ["denyDomains": ["denied.test"]]])
        defer { Task { _ = try? await client.delete("/sandboxes/\(gapped)") } }
        #expect(try await NetworkServer.run(client, gapped, "ls /sys/class/net") == "lo\n")
        let contradiction = try await client.post(
            "/sandboxes", ["template": "playground", "internet": false, "network": ["allowIPs": [inet.first]]])
        #expect(contradiction.status == 400 && (contradiction.object["message"] as? String ?? "").contains("allow-list"), "\(contradiction.text)")
        let bad = try await client.post("/sandboxes", ["template": "playground", "network": ["denyIPs": ["not-an-ip"]]])
        #expect(bad.status == 400, "\(bad.text)")
    }

    @Test func domainPoliciesBySNIHostAndResolvedAddresses() async throws {
        let (_, inet, client) = try await NetworkServer.client("domains")
        // The docs' agent example: sniProxy with an allow-list (names resolve through the server's overrides).
        let id = try await NetworkServer.create(client, ["sniProxy": true, "allowDomains": ["allowed.test"]])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        #expect(try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/hello.py", "content": NetworkServer.hello]).status == 200)
        #expect(try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/get.py", "content": NetworkServer.get]).status == 200)
        // Other ports: the resolved addresses of allowed names.
        #expect(try await NetworkServer.connect(client, id, inet.second, 8443) == "open")
        #expect(try await NetworkServer.connect(client, id, inet.first, 8443) != "open")
        // 443: the ClientHello's server name decides; the connection goes to that name's address.
        let hello = try await NetworkServer.run(client, id, "python3 /tmp/hello.py \(inet.first) allowed.test")
        #expect(hello.contains("got tls-ok"), "\(hello)")
        #expect(try await NetworkServer.run(client, id, "python3 /tmp/hello.py \(inet.second) other.test").hasPrefix("reset"))
        // 80: the Host header decides.
        let get = try await NetworkServer.run(client, id, "python3 /tmp/get.py \(inet.second) allowed.test")
        #expect(get.contains("inet-ok host=allowed.test"), "\(get)")
        #expect(try await NetworkServer.run(client, id, "python3 /tmp/get.py \(inet.second) other.test").hasPrefix("reset"))
        // Live: deny a name instead (no allow-list any more).
        #expect(try await client.post("/sandboxes/\(id)/network-policy", ["denyDomains": ["denied.test"]]).status == 200)
        #expect(try await NetworkServer.connect(client, id, inet.first, 8443) != "open")
        #expect(try await NetworkServer.connect(client, id, inet.second, 8443) == "open")
        #expect(try await NetworkServer.run(client, id, "python3 /tmp/hello.py \(inet.first) denied.test").hasPrefix("reset"))
        #expect(try await NetworkServer.run(client, id, "python3 /tmp/hello.py \(inet.first) other.test").hasPrefix("reset"))
        #expect(try await NetworkServer.run(client, id, "python3 /tmp/hello.py \(inet.first) allowed.test").contains("got tls-ok"))
        let bad = try await client.post("/sandboxes/\(id)/network-policy", ["allowDomains": ["bad name!"]])
        #expect(bad.status == 400)
    }

    @Test func teardownLeavesNothingBehind() async throws {
        let (server, _, client) = try await NetworkServer.client("teardown")
        let id = try await NetworkServer.create(client)
        let namespace = HostNetwork.namespacePrefix(tag: server.networkTag) + id
        #expect(NetworkServer.namespaces(server).contains(namespace))
        // The namespace's end of the veth pair names its peer on the host ("eth0@if<index>").
        let peer = runTool(["/usr/sbin/ip", "-n", namespace, "-o", "link", "show", "eth0"])
            .split(separator: " ").dropFirst().first?.split(separator: "@").last.map { String($0.dropFirst(2).dropLast()) } ?? ""
        let hostDevice = runTool(["/usr/sbin/ip", "-o", "link", "show"]).split(separator: "\n")
            .first { $0.hasPrefix("\(peer): ") }?.split(separator: " ").dropFirst().first.map { String($0.split(separator: "@")[0]) }
        #expect(hostDevice?.hasPrefix("orn\(server.networkTag)") == true, "\(peer) \(hostDevice ?? "-")")
        #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        #expect(!NetworkServer.namespaces(server).contains(namespace))
        #expect(!runTool(["/usr/sbin/ip", "netns", "list"]).contains(namespace))
        if let hostDevice {
            #expect(!runTool(["/usr/sbin/ip", "-o", "link", "show"]).contains(" \(hostDevice)@"))
        }
        // A namespace a crashed run left behind is removed when the server starts again.
        let orphan = HostNetwork.namespacePrefix(tag: server.networkTag) + "sb_0rphan00"
        runTool(["/usr/sbin/ip", "netns", "add", orphan])
        #expect(NetworkServer.namespaces(server).contains(orphan))
        server.crash()
        try await server.restart()
        #expect(!NetworkServer.namespaces(server).contains(orphan))
        // The host table holds only the server's fixed rules, never one per sandbox.
        let table = runTool(["/usr/sbin/nft", "list", "table", "inet", HostNetwork.hostTableName(tag: server.networkTag)])
        #expect(!table.contains(id))
    }

    @Test func withoutNetworkSupportInternetIsAClearError() async throws {
        let server = try await TestServer.start(name: "no-network", environment: ["OMNIRUN_NETWORK": "off"])
        defer { Task { await server.shutdown() } }
        let client = server.client()
        let refused = try await client.post("/sandboxes", ["template": "playground", "internet": true])
        #expect(refused.status == 503, "\(refused.text)")
        #expect(refused.object["error"] as? String == "unavailable")
        #expect((refused.object["message"] as? String ?? "").contains("internet access is not available"))
        let policy = try await client.post("/sandboxes", ["template": "playground", "network": ["allowIPs": ["10.1.1.1"]]])
        #expect(policy.status == 503)
        // Air-gapped sandboxes are unaffected.
        let id = try await createSandbox(client, ["template": "playground", "timeout": 300])
        #expect(try await NetworkServer.run(client, id, "ls /sys/class/net") == "lo\n")
        _ = try await client.delete("/sandboxes/\(id)")
    }
}
