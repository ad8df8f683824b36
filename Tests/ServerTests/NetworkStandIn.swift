import Foundation
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// "The internet" for network tests: a namespace this test process makes, reachable
/// from the host through a veth pair, with two addresses (`first`, `second`) where a
/// small server answers HTTP on port 80 (echoing the Host it saw), a TLS-ish listener
/// on 443 (answers `tls-ok` once it has read a ClientHello), a plain TCP listener on
/// 8443, and a UDP echo on 53 (a
/// stand-in resolver). No traffic goes anywhere else. The server and the namespace
/// go away when this process ends (the server watches its standard input).
final class NetworkStandIn: @unchecked Sendable {
    let namespace: String
    let hostDevice: String
    let hostAddress: String
    let first: String
    let second: String
    private let process: Process
    private let keepAlive: Pipe

    static let shared = Task<NetworkStandIn, any Error> { try NetworkStandIn() }

    private init() throws {
        let pid = Int(getpid())
        let octet = 1 + pid % 250
        namespace = "omnirun-test-inet-\(pid)"
        hostDevice = "otinet\(pid % 100_000)"
        hostAddress = "10.204.\(octet).1"
        first = "10.204.\(octet).2"
        second = "10.204.\(octet).3"
        Self.removeStale()
        runTool(["/usr/sbin/ip", "netns", "add", namespace])
        runTool(["/usr/sbin/ip", "link", "add", hostDevice, "type", "veth", "peer", "name", "eth0", "netns", namespace])
        runTool(["/usr/sbin/ip", "addr", "add", "\(hostAddress)/24", "dev", hostDevice])
        runTool(["/usr/sbin/ip", "link", "set", hostDevice, "up"])
        for command in [
            ["link", "set", "lo", "up"], ["addr", "add", "\(first)/24", "dev", "eth0"], ["addr", "add", "\(second)/24", "dev", "eth0"],
            ["link", "set", "eth0", "up"],
        ] {
            runTool(["/usr/sbin/ip", "-n", namespace] + command)
        }
        // Replies to sandboxes arrive on this device and must be forwarded to them.
        try "1".write(toFile: "/proc/sys/net/ipv4/conf/\(hostDevice)/forwarding", atomically: false, encoding: .utf8)
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("omnirun-inet-\(pid).py").path
        try Self.server.write(toFile: script, atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments = ["--net=/run/netns/\(namespace)", "/usr/bin/python3", script, namespace, hostDevice]
        keepAlive = Pipe()
        process.standardInput = keepAlive
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready once the HTTP port answers from the host.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, !runTool(["/usr/bin/python3", "-c", Self.probeHost, first, "80"]).hasPrefix("open") {
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// Namespaces of earlier runs whose process is gone.
    private static func removeStale() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [] where name.hasPrefix("omnirun-test-inet-") {
            guard let pid = Int32(name.dropFirst("omnirun-test-inet-".count)), kill(pid, 0) != 0 else { continue }
            runTool(["/usr/sbin/ip", "-n", name, "link", "del", "eth0"])
            runTool(["/usr/sbin/ip", "netns", "del", name])
        }
    }

    /// Stops the server and removes the namespace and its devices.
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
        import os, socket, subprocess, sys, threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        namespace, device = sys.argv[1], sys.argv[2]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass
            def do_GET(self):
                body = ("inet-ok host=%s" % self.headers.get("Host")).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def tls():
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("0.0.0.0", 443))
            listener.listen(64)
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

        def plain():
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("0.0.0.0", 8443))
            listener.listen(64)
            while True:
                conn, _ = listener.accept()
                conn.close()

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

        for target in (tls, plain, dns, watch):
            threading.Thread(target=target, daemon=True).start()
        ThreadingHTTPServer(("0.0.0.0", 80), Handler).serve_forever()
        """#
}
