import AgentClient
import AgentProtocol
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import OmniRunError
import Testing
import TestSupport

@testable import SandboxRuntime

@Suite("Files in a restored sandbox", .timeLimit(.minutes(5)))
struct FileTests {
    @Test func fiftyMebibyteBinaryRoundTrip() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let size = 50 << 20
            var generator = SplitMix64(seed: 42)
            var original = [UInt8](repeating: 0, count: size)
            original.withUnsafeMutableBytes { raw in
                let words = raw.bindMemory(to: UInt64.self)
                for i in words.indices { words[i] = generator.next() }
            }
            let chunkSize = 1 << 20
            let chunks = AsyncStream<ByteBuffer> { continuation in
                for offset in stride(from: 0, to: size, by: chunkSize) {
                    continuation.yield(ByteBuffer(bytes: original[offset..<offset + chunkSize]))
                }
                continuation.finish()
            }
            let written = try await sandbox.agent.writeFile(path: "/tmp/big.bin", chunks: chunks)
            #expect(written.size == Int64(size))
            #expect(written.owner == "user")
            let back: [UInt8] = try await sandbox.agent.readFile(path: "/tmp/big.bin")
            #expect(back.count == size)
            #expect(back == original)
        }
    }

    @Test func writeCreatesParentsAndStatListMoveRemoveBehave() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let agent = sandbox.agent
            let entry = try await agent.writeFile(path: "/tmp/a/b/c.txt", bytes: Array("hello".utf8))
            #expect(entry.type == .file && entry.size == 5 && entry.name == "c.txt")
            let relative = try await agent.writeFile(path: "notes/todo.txt", bytes: Array("x".utf8))
            #expect(relative.path == "/home/user/notes/todo.txt")
            _ = try await agent.makeDirectory(path: "/tmp/a/empty/deeper")
            let shallow = try await agent.list(path: "/tmp/a")
            #expect(shallow.map(\.name) == ["b", "empty"])
            let allDirectories = shallow.allSatisfy { $0.isDirectory }
            #expect(allDirectories)
            let deep = try await agent.list(path: "/tmp/a", depth: 3)
            #expect(Set(deep.map(\.path)) == ["/tmp/a/b", "/tmp/a/b/c.txt", "/tmp/a/empty", "/tmp/a/empty/deeper"])
            let moved = try await agent.move(from: "/tmp/a/b/c.txt", to: "/tmp/a/moved/d.txt")
            #expect(moved.path == "/tmp/a/moved/d.txt")
            let movedBytes: [UInt8] = try await agent.readFile(path: "/tmp/a/moved/d.txt")
            #expect(String(decoding: movedBytes, as: UTF8.self) == "hello")
            await expectCode(.notFound) { _ = try await agent.stat(path: "/tmp/a/b/c.txt") }
            try await agent.remove(path: "/tmp/a")
            await expectCode(.notFound) { _ = try await agent.stat(path: "/tmp/a") }
            await expectCode(.notFound) { let _: [UInt8] = try await agent.readFile(path: "/nope/missing") }
            await expectCode(.notFound) { _ = try await agent.list(path: "/nope") }
            // The default user may not write outside its own places; root may.
            await expectCode(.forbidden) { _ = try await agent.writeFile(path: "/etc/owned", bytes: [1]) }
            let asRoot = try await agent.writeFile(path: "/etc/owned", user: "root", bytes: [1])
            #expect(asRoot.owner == "root")
        }
    }

    @Test func fullAndReadOnlyDisksGiveClearErrors() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let setup = try await sandbox.run(
                "mkdir -p /mnt/small /mnt/ro && mount -t tmpfs -o size=1m,mode=1777 tmpfs /mnt/small && mount -t tmpfs -o ro tmpfs /mnt/ro",
                user: "root")
            #expect(setup.exitCode == 0, "\(setup.stderrText)")
            await expectCode(.noSpace) {
                _ = try await sandbox.agent.writeFile(path: "/mnt/small/fill.bin", bytes: [UInt8](repeating: 7, count: 3 << 20))
            }
            await expectCode(.conflict) {
                _ = try await sandbox.agent.writeFile(path: "/mnt/ro/x", user: "root", bytes: [1])
            }
        }
    }

    @Test func watchReportsCreateWriteRenameRemove() async throws {
        try await TestRuntime.withSandbox { sandbox in
            _ = try await sandbox.agent.makeDirectory(path: "/tmp/watched/sub")
            let events = NIOLockedValueBox<[WatchEvent]>([])
            let watcher = Task {
                try await sandbox.agent.watch(path: "/tmp/watched", recursive: true) { event in
                    events.withLockedValue { $0.append(event) }
                }
            }
            defer { watcher.cancel() }
            try await Task.sleep(for: .milliseconds(300))
            _ = try await sandbox.run(
                "echo one > /tmp/watched/f.txt; echo two >> /tmp/watched/f.txt; mv /tmp/watched/f.txt /tmp/watched/g.txt; echo deep > /tmp/watched/sub/h.txt; rm /tmp/watched/g.txt"
            )
            try await waitUntil {
                let seen = events.withLockedValue { $0 }
                return seen.contains { $0.type == .remove && $0.name == "g.txt" }
                    && seen.contains { $0.type == .create && $0.path == "/tmp/watched/sub/h.txt" }
            }
            let seen = events.withLockedValue { $0 }
            #expect(seen.contains { $0.type == .create && $0.name == "f.txt" })
            #expect(seen.contains { $0.type == .write && $0.name == "f.txt" })
            #expect(seen.contains { $0.type == .rename && $0.name == "g.txt" })
        }
    }
}

func expectCode(_ code: OmniRunError.Code, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(code), got success")
    } catch let error as OmniRunError {
        #expect(error.code == code, "\(error)")
    } catch {
        Issue.record("expected \(code), got \(error)")
    }
}

/// A small deterministic generator for test data.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Tunnel to a guest port", .timeLimit(.minutes(5)))
struct TunnelTests {
    @Test func httpThroughTheAgentTunnelWithNoNetworkDevice() async throws {
        try await TestRuntime.withSandbox { sandbox in
            // Air-gapped: the guest has only the loopback interface.
            let links = try await sandbox.run("ls /sys/class/net")
            #expect(links.stdoutText == "lo\n")
            _ = try await sandbox.agent.writeFile(path: "/tmp/www/index.html", bytes: Array("tunnelled".utf8))
            _ = try await sandbox.agent.startDetached(
                ProcessStartRequest(shell: "cd /tmp/www && exec python3 -m http.server 8000 --bind 127.0.0.1"))
            let response = NIOLockedValueBox<[UInt8]>([])
            var answered = false
            for _ in 0..<100 where !answered {
                response.withLockedValue { $0 = [] }
                do {
                    let request = ByteBuffer(string: "GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
                    try await sandbox.agent.tunnel(port: 8000, upstream: [request].asyncSequence) { chunk in
                        response.withLockedValue { $0 += chunk.readableBytesView }
                    }
                    answered = true
                } catch {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            let text = String(decoding: response.withLockedValue { $0 }, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.0 200"))
            #expect(text.hasSuffix("tunnelled"))
            do {
                try await sandbox.agent.tunnel(port: 8001, upstream: [ByteBuffer]().asyncSequence) { _ in }
                Issue.record("a closed port answered")
            } catch let error as OmniRunError {
                #expect(error.code == .unavailable)
            }
        }
    }
}
