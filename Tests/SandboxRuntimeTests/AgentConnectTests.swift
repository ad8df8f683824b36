import AgentClient
import Foundation
import OmniRunError
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A Unix socket that accepts connections, counts them and never answers: a guest
/// whose agent is not listening yet.
private final class SilentListener: Sendable {
    private final class State: Sendable {
        let accepted = Atomic<Int>(0)
        let stopped = Atomic<Bool>(false)
    }

    let path: String
    private let fd: Int32
    private let state = State()

    init() throws {
        let path = "/tmp/omr-silent-\(UInt32.random(in: 0...UInt32.max)).sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0, listen(fd, 16) == 0 else {
            throw OmniRunError(.internalError, "listener: errno \(errno)")
        }
        self.path = path
        self.fd = fd
        let state = self.state
        Thread {
            var held: [Int32] = []
            while !state.stopped.load(ordering: .acquiring) {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 50) > 0 {
                    let client = accept(fd, nil, nil)
                    if client >= 0 {
                        held.append(client)
                        state.accepted.add(1, ordering: .relaxed)
                    }
                }
            }
            for client in held { close(client) }
        }.start()
    }

    var connections: Int { state.accepted.load(ordering: .relaxed) }

    func stop() {
        state.stopped.store(true, ordering: .releasing)
        Thread.sleep(forTimeInterval: 0.1)
        close(fd)
        unlink(path)
    }
}

@Suite("Waiting for an agent on a loaded host")
struct AgentConnectTests {
    @Test func aSilentAgentTimesOutAfterTheTimeout() async throws {
        let listener = try SilentListener()
        defer { listener.stop() }
        let started = ContinuousClock.now
        await #expect(throws: OmniRunError.self) {
            _ = try await GuestAgentClient.connect(socketPath: listener.path, name: "silent", timeout: .milliseconds(600))
        }
        // Generous: the suite runs beside restores that load the host.
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    /// Time the machine spent waiting for a host CPU extends the wait (up to four
    /// times the timeout), and attempts made while starved do not drop the connection.
    @Test func starvationExtendsTheWaitOnTheSameConnection() async throws {
        let listener = try SilentListener()
        defer { listener.stop() }
        let started = ContinuousClock.now
        do {
            _ = try await GuestAgentClient.connect(
                socketPath: listener.path, name: "starved", timeout: .milliseconds(600),
                starvedFor: { ContinuousClock.now - started })
            Issue.record("a silent agent answered")
        } catch let error as OmniRunError {
            #expect(error.code == .timeout)
        }
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(1800) && waited < .seconds(15), "\(waited)")
        #expect(listener.connections == 1)
    }
}
