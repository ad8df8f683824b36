import AgentClient
import AgentProtocol
import Foundation
import Testing
import TestSupport

@testable import SandboxRuntime

@Suite("Host gateway", .timeLimit(.minutes(8)))
struct GatewayTests {
    /// Programs in the guest connect to 127.0.0.1:18080; each connection reaches the host
    /// over the agent's channel (here an echo), several at once, bytes intact, both
    /// directions closing cleanly.
    @Test func guestConnectionsReachTheHostThroughTheAgent() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let agent = sandbox.agent
            let accepted = Task {
                await withDiscardingTaskGroup { group in
                    for _ in 0..<4 {
                        group.addTask {
                            while !Task.isCancelled {
                                try? await agent.acceptGatewayConnection(onAccepted: {}) { connection in
                                    for await chunk in connection.inbound { try await connection.write(chunk) }
                                    await connection.finish()
                                }
                            }
                        }
                    }
                }
            }
            defer { accepted.cancel() }
            let script = """
                import hashlib, os, socket, threading
                def one(results):
                    data = os.urandom(256 * 1024)
                    s = socket.create_connection(("127.0.0.1", \(AgentAPI.HostGateway.port)))
                    def send():
                        s.sendall(data)
                        s.shutdown(socket.SHUT_WR)
                    threading.Thread(target=send).start()
                    got = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                    results.append(hashlib.sha256(got).digest() == hashlib.sha256(data).digest())
                results = []
                threads = [threading.Thread(target=one, args=(results,)) for _ in range(6)]
                for t in threads: t.start()
                for t in threads: t.join()
                print(sum(results))
                """
            _ = try await agent.writeFile(path: "/tmp/gateway.py", bytes: Array(script.utf8))
            let result = try await sandbox.run("python3 /tmp/gateway.py", timeoutMillis: 120_000)
            #expect(result.stdoutText == "6\n", "\(result.stderrText)")
            // Nothing listening on the host side: a guest connection waits instead of failing.
            accepted.cancel()
            let late = try await agent.startDetached(
                ProcessStartRequest(shell: "exec 3<>/dev/tcp/127.0.0.1/\(AgentAPI.HostGateway.port); echo late >&3; read -r line <&3; echo $line"))
            try await Task.sleep(for: .seconds(1))
            try await agent.acceptGatewayConnection(onAccepted: {}) { connection in
                for await chunk in connection.inbound {
                    try await connection.write(chunk)
                    break
                }
                await connection.finish()
            }
            var output = try await agent.processOutput(pid: late)
            for _ in 0..<50 where output.info.running {
                try await Task.sleep(for: .milliseconds(100))
                output = try await agent.processOutput(pid: late)
            }
            #expect(String(decoding: Data(base64Encoded: output.stdout) ?? Data(), as: UTF8.self) == "late\n")
        }
    }
}
