import AgentClient
import AgentProtocol
import Foundation
import NIOConcurrencyHelpers
import OmniRunError
import Testing
import TestSupport

/// A virtio-serial port is one byte stream for the guest, whichever host connection the
/// bytes came on. A host that gives up on a connection whose requests the guest reads late
/// (a starved boot) sends its next connection's preface into the middle of the agent's
/// session: the agent answers GOAWAY, and the answer the host just read may have been to
/// the old request. The client must notice and start over, not hand out a connection that
/// fails its next call.
@Suite("The agent port's one byte stream", .serialized, .timeLimit(.minutes(2)))
struct AgentPortSessionTests {
    @Test func anAbandonedConnectionsLateBytesDoNotBreakTheNextSession() async throws {
        let agentPath = "/tmp/omr-port-agent-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let portPath = "/tmp/omr-port-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let agent = try await FakeGuestAgent.start(path: agentPath)
        let port = try StickyPort(path: portPath, guest: agentPath)
        defer { port.stop() }
        do {
            let client = try await GuestAgentClient.connect(socketPath: portPath, name: "sandbox sticky", timeout: .seconds(20))
            // Every later call works: the session the client kept is the agent's own.
            for _ in 0..<3 {
                let health = try await client.health()
                #expect(health.apiVersion == AgentAPI.version)
            }
            #expect(client.protocolViolation == nil)
            // The port carried the first connection's bytes into a later one, and the client
            // needed a session of its own (a third connection).
            #expect(port.hostConnections >= 3, "host connections: \(port.hostConnections)")
            #expect(port.lateBytes > 0)

            // Once the connection is the sandbox's, the agent ending it is a violation: the
            // next call says so and the runtime hears of it (it ends the sandbox as failed).
            let heard = NIOLockedValueBox<[String]>([])
            client.onProtocolViolation { message in heard.withLockedValue { $0.append(message) } }
            port.sendToGuest(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8))
            for _ in 0..<250 where client.isConnected { try await Task.sleep(for: .milliseconds(20)) }
            #expect(!client.isConnected)
            var code: OmniRunError.Code?
            do { _ = try await client.health(timeout: .seconds(5)) } catch let error as OmniRunError { code = error.code }
            #expect(code == .protocolViolation)
            #expect(heard.withLockedValue { $0 }.first?.contains("GOAWAY") == true, "\(heard.withLockedValue { $0 })")
            await client.close()
        } catch {
            await agent.stop()
            throw error
        }
        await agent.stop()
    }
}

/// Stands in for QEMU's end of the agent port: the host connects to `path`; the guest's
/// agent is one connection to `guest`. The first host connection is read but its bytes
/// reach the guest only after the port has closed it (the guest was not running); later
/// host connections are carried live, and the guest notices each one's end (its session
/// ends, the next starts afresh).
final class StickyPort: @unchecked Sendable {
    private let listener: Int32
    private let guestPath: String
    private let lock = NSLock()
    private var guest: Int32 = -1
    private var host: Int32 = -1
    private var stopped = false
    private var connections = 0
    private var late = 0
    private var held: [UInt8] = []

    var hostConnections: Int { lock.withLock { connections } }
    var lateBytes: Int { lock.withLock { late } }

    init(path: String, guest guestPath: String) throws {
        self.guestPath = guestPath
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.address(path)
        unlink(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(listener, 8) == 0 else { throw OmniRunError(.internalError, "cannot listen on \(path)") }
        Thread.detachNewThread { self.acceptLoop() }
    }

    func stop() {
        lock.withLock {
            stopped = true
            if guest >= 0 { shutdown(guest, Int32(SHUT_RDWR)) }
            if host >= 0 { shutdown(host, Int32(SHUT_RDWR)) }
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    /// Writes `bytes` into the guest's current session, as if they came from the host.
    func sendToGuest(_ bytes: [UInt8]) {
        lock.withLock {
            if guest >= 0 { _ = bytes.withUnsafeBytes { write(guest, $0.baseAddress, $0.count) } }
        }
    }

    private static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    private func connectGuest() -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.address(guestPath)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if connected != 0 { close(fd); return -1 }
        // What the guest answers goes to whichever host is connected now.
        Thread.detachNewThread { self.pump(from: fd, toHost: true) }
        return fd
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            let first: Bool = lock.withLock {
                connections += 1
                return connections == 1
            }
            if first {
                // Read what the host sends for a while, then drop the connection; the
                // guest takes the bytes in afterwards, as the start of its session.
                var held: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 65536)
                let until = Date().addingTimeInterval(0.3)
                while Date() < until {
                    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    if poll(&p, 1, 50) > 0 {
                        let n = read(fd, &buffer, buffer.count)
                        if n <= 0 { break }
                        held += buffer[0..<n]
                    }
                }
                close(fd)
                lock.withLock {
                    self.held = held
                    late = held.count
                }
                continue
            }
            // The guest starts running now: it reads what the first connection left in the
            // port, then this connection's bytes, in one session, answering this host.
            // (A guest whose last session ended starts a new one for this host.)
            let stale: [UInt8]? = lock.withLock {
                host = fd
                defer { held = [] }
                return guest < 0 ? held : nil
            }
            if let stale {
                let guest = connectGuest()
                lock.withLock { self.guest = guest }
                if guest >= 0, !stale.isEmpty { _ = stale.withUnsafeBytes { write(guest, $0.baseAddress, $0.count) } }
            }
            Thread.detachNewThread {
                self.pump(from: fd, toHost: false)
                // The guest noticed this host's end: its session ends.
                self.lock.withLock {
                    if self.host == fd { self.host = -1 }
                    if self.guest >= 0 { shutdown(self.guest, Int32(SHUT_RDWR)); close(self.guest) }
                    self.guest = -1
                }
                close(fd)
            }
        }
    }

    /// Copies bytes from `fd` to the guest (or, from the guest, to the current host)
    /// until `fd` ends.
    private func pump(from fd: Int32, toHost: Bool) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { return }
            let target = lock.withLock { toHost ? host : guest }
            if target >= 0 { _ = buffer.withUnsafeBytes { write(target, $0.baseAddress, n) } }
        }
    }
}
