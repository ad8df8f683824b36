import Foundation
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A network for network tests: a namespace this test process makes, reachable from the
/// host through a veth pair, with addresses where a small server answers: HTTP on 80
/// (`<label>-ok host=<Host>`, GET and POST), a TLS-ish listener on 443 (answers `tls-ok`
/// once it has read a ClientHello), a plain TCP listener on 8443, a UDP echo on 53 (a
/// stand-in resolver), and on the `sink` address (if any) listeners on 80 and 443 that
/// accept and never read. No traffic goes anywhere else. The server and the namespace
/// go away when this process ends (the server watches its standard input).
///
/// `shared` is "the internet", in 198.18.0.0/15 (the benchmarking range: not a private
/// network, so sandboxes may reach it by default); `lan` is a private network
/// (10.205.x.0/24) with a stand-in of the metadata service on 169.254.169.254.
final class NetworkStandIn: @unchecked Sendable {
    let namespace: String
    let hostDevice: String
    let hostAddress: String
    /// The addresses with servers: `first`, `second` (and more for the LAN).
    let addresses: [String]
    let sink: String?
    private let process: Process
    private let keepAlive: Pipe

    var first: String { addresses[0] }
    var second: String { addresses[1] }

    static let shared = Task<NetworkStandIn, any Error> {
        let octet = 1 + Int(getpid()) % 250
        return try NetworkStandIn(
            kind: "inet", label: "inet", subnet: "198.18.\(octet)", extra: [], sink: "198.18.\(octet).4")
    }

    /// The metadata service's address (on the LAN stand-in, routed there by the host).
    static let metadataAddress = "169.254.169.254"

    static let lan = Task<NetworkStandIn, any Error> {
        let octet = 1 + Int(getpid()) % 250
        return try NetworkStandIn(kind: "lan", label: "lan", subnet: "10.205.\(octet)", extra: [metadataAddress], sink: nil)
    }

    private init(kind: String, label: String, subnet: String, extra: [String], sink: String?) throws {
        let pid = Int(getpid())
        namespace = "omnirun-test-\(kind)-\(pid)"
        hostDevice = "ot\(kind)\(pid % 100_000)"
        hostAddress = "\(subnet).1"
        addresses = ["\(subnet).2", "\(subnet).3"] + extra
        self.sink = sink
        Self.removeStale(kind: kind)
        runTool(["/usr/sbin/ip", "netns", "add", namespace])
        runTool(["/usr/sbin/ip", "link", "add", hostDevice, "type", "veth", "peer", "name", "eth0", "netns", namespace])
        runTool(["/usr/sbin/ip", "addr", "add", "\(hostAddress)/24", "dev", hostDevice])
        runTool(["/usr/sbin/ip", "link", "set", hostDevice, "up"])
        var commands = [["link", "set", "lo", "up"]]
        for address in addresses + (sink.map { [$0] } ?? []) {
            commands.append(["addr", "add", address.hasPrefix(subnet + ".") ? "\(address)/24" : "\(address)/32", "dev", "eth0"])
        }
        commands.append(["link", "set", "eth0", "up"])
        for command in commands {
            runTool(["/usr/sbin/ip", "-n", namespace] + command)
        }
        // Addresses outside the link's subnet: the host routes them to it, and they answer
        // from there. (A metric of this process's own: parallel test processes may each
        // have such a route; whichever answers is a stand-in of the same kind.)
        for address in extra {
            runTool(["/usr/sbin/ip", "route", "add", "\(address)/32", "dev", hostDevice, "metric", "\(1000 + pid % 50_000)"])
        }
        // Replies to sandboxes arrive on this device and must be forwarded to them.
        try "1".write(toFile: "/proc/sys/net/ipv4/conf/\(hostDevice)/forwarding", atomically: false, encoding: .utf8)
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("omnirun-\(kind)-\(pid).py").path
        try Self.server.write(toFile: script, atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments =
            ["--net=/run/netns/\(namespace)", "/usr/bin/python3", script, namespace, label, addresses.joined(separator: ","), sink ?? ""]
        keepAlive = Pipe()
        process.standardInput = keepAlive
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready once the HTTP port answers from the host.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, !runTool(["/usr/bin/python3", "-c", Self.probeHost, addresses[0], "80"]).hasPrefix("open") {
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// Namespaces of earlier runs whose process is gone.
    private static func removeStale(kind: String) {
        let prefix = "omnirun-test-\(kind)-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), kill(pid, 0) != 0 else { continue }
            runTool(["/usr/sbin/ip", "-n", name, "link", "del", "eth0"])
            runTool(["/usr/sbin/ip", "netns", "del", name])
        }
    }

    /// Stops the server and removes the namespace and its devices (their routes go with them).
    func remove() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        runTool(["/usr/sbin/ip", "-n", namespace, "link", "del", "eth0"])
        runTool(["/usr/sbin/ip", "netns", "del", namespace])
    }

    static let probeHost = """
        import socket, sys
        try:
            socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
            print("open")
        except OSError as e:
            print("closed", e)
        """

    static let server = #"""
        import os, socket, subprocess, sys, threading, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        namespace, label, addresses, sink = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass
            def answer(self):
                body = ("%s-ok host=%s to=%s" % (label, self.headers.get("Host"), self.connection.getsockname()[0])).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def do_GET(self):
                self.answer()
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(min(length, 1 << 20))
                self.answer()

        def listen(address, port):
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((address, port))
            listener.listen(64)
            return listener

        def tls(address):
            listener = listen(address, 443)
            while True:
                conn, _ = listener.accept()
                def serve(conn):
                    try:
                        conn.settimeout(5)
                        if conn.recv(5)[:1] == b"\x16":
                            conn.sendall(b"tls-ok")
                    except OSError:
                        pass
                    conn.close()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

        def plain(address):
            listener = listen(address, 8443)
            while True:
                conn, _ = listener.accept()
                conn.close()

        def never_reads(port):
            # Accepts and never reads (a receive buffer kept small): a slow far side.
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            listener.bind((sink, port))
            listener.listen(64)
            held = []
            while True:
                conn, _ = listener.accept()
                held.append((time.time(), conn))
                for at, old in list(held):
                    if time.time() - at > 120:
                        old.close()
                        held.remove((at, old))

        def dns():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", 53))
            while True:
                data, peer = sock.recvfrom(2048)
                sock.sendto(b"dns-echo:" + data, peer)

        def watch():
            sys.stdin.buffer.read()
            subprocess.run(["/usr/sbin/ip", "link", "del", "eth0"])
            subprocess.run(["/usr/sbin/ip", "netns", "del", namespace])
            os._exit(0)

        targets = [(dns, ()), (watch, ())]
        for address in addresses:
            targets += [(tls, (address,)), (plain, (address,))]
        if sink:
            targets += [(never_reads, (80,)), (never_reads, (443,))]
        for address in addresses[1:]:
            targets.append((ThreadingHTTPServer((address, 80), Handler).serve_forever, ()))
        for target, args in targets:
            threading.Thread(target=target, args=args, daemon=True).start()
        ThreadingHTTPServer((addresses[0], 80), Handler).serve_forever()
        """#
}
