import AgentClient
import AgentProtocol
import Foundation
import OmniRunError
import Testing
import TestSupport

@testable import SandboxRuntime

/// The agent acts as the user a request names, or not at all. The guest's root writes
/// `/etc/passwd` and `/etc/group`: a uid or gid of 4294967295 is "no change" to the
/// kernel's set*id calls and 65 537 groups cannot be set, so switching to such a user
/// does not take. Every file operation and every process start for them must fail with
/// an error; none may run as root instead.
@Suite("User switches in a restored sandbox", .timeLimit(.minutes(5)))
struct UserSwitchTests {
    @Test func aUserTheAgentCannotBecomeIsRefusedNeverRunAsRoot() async throws {
        try await TestRuntime.withSandbox { sandbox in
            let agent = sandbox.agent
            let setup = try await sandbox.run(
                """
                echo 'ghost:x:4294967295:4294967295::/tmp:/bin/sh' >> /etc/passwd
                echo 'halfghost:x:1501:4294967295::/tmp:/bin/sh' >> /etc/passwd
                echo 'uidghost:x:4294967295:1502::/tmp:/bin/sh' >> /etc/passwd
                echo 'crowd:x:1500:1500::/tmp:/bin/sh' >> /etc/passwd
                echo ready
                """, user: "root")
            #expect(setup.stdoutText.hasSuffix("ready\n"), "\(setup.stderrText)")
            let bytes = Array("written as whom?".utf8)
            for user in ["ghost", "halfghost", "uidghost"] {
                await expectCode(.forbidden) { _ = try await agent.writeFile(path: "/root/\(user).txt", user: user, bytes: bytes) }
                await expectCode(.forbidden) { _ = try await agent.writeFile(path: "/tmp/\(user).txt", user: user, bytes: bytes) }
                await expectCode(.forbidden) { _ = try await agent.makeDirectory(path: "/root/\(user)-dir", user: user) }
                await expectCode(.forbidden) { try await agent.remove(path: "/etc/hostname", user: user) }
                await expectCode(.forbidden) { _ = try await agent.move(from: "/etc/hosts", to: "/root/hosts-\(user)", user: user) }
                await expectCode(.forbidden) { let _: [UInt8] = try await agent.readFile(path: "/etc/shadow", user: user) }
                await expectCode(.forbidden) { _ = try await agent.stat(path: "/root", user: user) }
                await expectCode(.forbidden) {
                    _ = try await agent.run(ProcessStartRequest(shell: "id -u > /root/\(user)-ran", user: user))
                }
                await expectCode(.forbidden) {
                    _ = try await agent.startDetached(ProcessStartRequest(shell: "touch /root/\(user)-pty", user: user, pty: PTYSize(cols: 80, rows: 24)))
                }
            }
            // A user in 65 537 groups (one more than setgroups takes); /etc/group is put back after.
            let crowd = try await sandbox.run(
                """
                cp /etc/group /run/group.saved
                python3 -c "
                with open('/etc/group', 'a') as f:
                    for i in range(65537): f.write(f'crowd{i}:x:{200000 + i}:crowd\\n')
                "
                wc -l < /etc/group
                """, user: "root")
            #expect((Int(crowd.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 65537, "\(crowd.stderrText)")
            await expectCode(.forbidden) { _ = try await agent.writeFile(path: "/root/crowd.txt", user: "crowd", bytes: bytes) }
            // (Calls without a host deadline: every lookup now reads 1.3 MB of /etc/group, which
            // takes the emulated guest seconds.)
            await expectCode(.forbidden) { let _: [UInt8] = try await agent.readFile(path: "/etc/shadow", user: "crowd") }
            await expectCode(.forbidden) { _ = try await agent.run(ProcessStartRequest(shell: "id -u > /root/crowd-ran", user: "crowd")) }
            _ = try await sandbox.run("cp /run/group.saved /etc/group", user: "root")
            // Nothing was written, moved or removed, by root or anyone.
            let check = try await sandbox.run(
                "ls -A /root /tmp | grep -E 'ghost|crowd' || true; test -f /etc/hostname && test -f /etc/hosts && echo intact",
                user: "root")
            #expect(check.stdoutText == "intact\n", "\(check.stdoutText)")
            // Users the agent can become still work, as themselves.
            let written = try await agent.writeFile(path: "/tmp/honest.txt", user: "user", bytes: bytes)
            #expect(written.owner == "user")
            await expectCode(.forbidden) { _ = try await agent.writeFile(path: "/root/honest.txt", user: "user", bytes: bytes) }
            let id = try await agent.run(ProcessStartRequest(shell: "id -u", user: "user"))
            #expect(id.stdoutText != "0\n" && id.exitCode == 0, "\(id.stdoutText)")
            let asRoot = try await agent.writeFile(path: "/root/by-root.txt", user: "root", bytes: bytes)
            #expect(asRoot.owner == "root")
        }
    }
}
