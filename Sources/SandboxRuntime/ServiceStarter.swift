import AgentClient
import AgentProtocol
import Foundation
import Logging
import OmniRunError

/// Brings up a template's service before its snapshot is taken: the start command
/// runs in the background (as root for built-ins; a custom template's user), then the
/// ready check is retried until it exits
/// 0, so that every sandbox restored from the snapshot finds the service up.
struct ServiceStarter {
    let agent: GuestAgentClient
    let template: String
    let logger: Logger

    /// The tag of the start command's process in every sandbox of the template.
    static let startTag = "template-start"

    func start(_ setup: TemplateSetup) async throws {
        let started = ContinuousClock.now
        var startPID: Int32?
        if let command = setup.start {
            startPID = try await agent.startDetached(
                ProcessStartRequest(shell: command, env: setup.env, cwd: setup.cwd, user: setup.user, tag: Self.startTag))
            logger.info("template start command launched", metadata: ["template": "\(template)", "command": "\(command)"])
        }
        guard let ready = setup.ready else {
            // No ready check: the start command only has to survive its first moments
            // (or finish successfully, as a daemon's launcher does).
            if let startPID {
                try await Task.sleep(for: .seconds(1))
                try await failIfStartFailed(startPID)
            }
            return
        }
        let deadline = ContinuousClock.now + setup.readyTimeout
        var attempts = 0
        while true {
            attempts += 1
            let result = try await agent.run(
                ProcessStartRequest(shell: ready, env: setup.env, cwd: setup.cwd, user: setup.user, timeoutMillis: 60_000))
            if result.exitCode == 0 {
                logger.info(
                    "template ready check passed",
                    metadata: ["template": "\(template)", "attempts": "\(attempts)", "after": "\(ContinuousClock.now - started)"])
                return
            }
            if let startPID { try await failIfStartFailed(startPID) }
            if ContinuousClock.now >= deadline {
                let tail = Self.tail(result.stderrText.isEmpty ? result.stdoutText : result.stderrText)
                throw OmniRunError(
                    .timeout,
                    "template \(template): the ready check `\(ready)` did not pass within \(setup.readyTimeout) "
                        + "(\(attempts) attempts; last exit \(result.exitCode)\(tail.isEmpty ? "" : ": \(tail)"))")
            }
            try await Task.sleep(for: .milliseconds(attempts < 10 ? 250 : 1000))
        }
    }

    /// A start command that has already ended with an error fails the build at once.
    private func failIfStartFailed(_ pid: Int32) async throws {
        let output = try await agent.processOutput(pid: pid)
        guard !output.info.running, let code = output.info.exitCode, code != 0 else { return }
        let stderr = String(decoding: Data(base64Encoded: output.stderr) ?? Data(), as: UTF8.self)
        let stdout = String(decoding: Data(base64Encoded: output.stdout) ?? Data(), as: UTF8.self)
        let tail = Self.tail(stderr.isEmpty ? stdout : stderr)
        throw OmniRunError(
            .machineFailed,
            "template \(template): the start command `\(output.info.command.prefix(500))` exited with \(code)\(tail.isEmpty ? "" : ": \(tail)")")
    }

    /// The last few lines of some output, for an error message.
    /// (At most 4000 characters: it is the guest's output, quoted in an error the store keeps.)
    static func tail(_ text: String, lines: Int = 12) -> String {
        String(text.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines).joined(separator: "\n").suffix(4000))
    }
}
