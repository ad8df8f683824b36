import AgentProtocol
import NIOConcurrencyHelpers
import OmniRunError

/// What a finished process produced.
public struct CommandResult: Sendable, Equatable {
    public var pid: Int32
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    public var exitCode: Int32
    public var signal: Int32?
    /// Set when the agent ended the process (`timeout`).
    public var error: String?
    /// Spawn to exit, measured inside the guest.
    public var durationMicros: Int64?

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

extension GuestAgentClient {
    /// Runs a process to completion and collects its output (up to `limit` bytes of each
    /// stream). With `timeout`, the host stops waiting after it (`.timeout`) whatever the
    /// agent does about the request's own `timeoutMillis`.
    public func run(_ request: ProcessStartRequest, limit: Int = 64 << 20, timeout: Duration? = nil) async throws -> CommandResult {
        let box = NIOLockedValueBox(CommandResult(pid: 0, stdout: [], stderr: [], exitCode: -1))
        let ended = NIOLockedValueBox(false)
        try await startProcess(request, timeout: timeout) { event in
            try box.withLockedValue { result in
                switch event.type {
                case .start: result.pid = event.pid ?? 0
                case .stdout, .pty:
                    result.stdout.append(contentsOf: event.bytes ?? [])
                    if result.stdout.count > limit { throw OmniRunError(.payloadTooLarge, "stdout exceeds \(limit) bytes") }
                case .stderr:
                    result.stderr.append(contentsOf: event.bytes ?? [])
                    if result.stderr.count > limit { throw OmniRunError(.payloadTooLarge, "stderr exceeds \(limit) bytes") }
                case .end:
                    result.exitCode = event.exitCode ?? -1
                    result.signal = event.signal
                    result.error = event.error
                    result.durationMicros = event.durationMicros
                    ended.withLockedValue { $0 = true }
                case .truncated: break
                }
            }
        }
        guard ended.withLockedValue({ $0 }) else {
            throw OmniRunError(.unavailable, "the agent of \(name) ended the process stream before the process ended")
        }
        return box.withLockedValue { $0 }
    }
}
