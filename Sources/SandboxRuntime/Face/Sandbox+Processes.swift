import AgentClient
import AgentProtocol
import OmniRunError

/// How a process in a sandbox ended, as the host reports it.
public enum ProcessOutcome: Sendable, Equatable {
    /// It ended by itself; `code` is the exit code the agent reported (-1 when it reported none).
    case exited(code: Int32)
    /// The agent ended it at its `timeoutMillis`.
    case timedOut
    /// A signal ended it; `code` is the exit code the agent reported with it.
    case killed(signal: Int32, code: Int32)

    /// The exit code of a command that ran out of time (as GNU `timeout` reports it).
    public static let timeoutExitCode: Int32 = 124

    /// Reads the agent's report of a process's end: its exit code, signal and `error`
    /// (`"timeout"` when the agent ended the process at its timeout). The only place
    /// that knows the agent's word for a timeout.
    public init(exitCode: Int32?, signal: Int32?, error: String?) {
        if error == "timeout" {
            self = .timedOut
        } else if let signal, signal > 0 {
            self = .killed(signal: signal, code: exitCode ?? -1)
        } else {
            self = .exited(code: exitCode ?? -1)
        }
    }

    /// The outcome an `end` event carries (nil for any other event).
    public init?(ending event: ProcessEvent) {
        guard event.type == .end else { return nil }
        self.init(exitCode: event.exitCode, signal: event.signal, error: event.error)
    }

    /// The exit code clients see: the agent's, or 124 for a timeout.
    public var exitCode: Int32 {
        switch self {
        case .exited(let code): code
        case .timedOut: Self.timeoutExitCode
        case .killed(_, let code): code
        }
    }
}

/// What a finished process produced.
public struct ProcessResult: Sendable, Equatable {
    public var pid: Int32
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    public var outcome: ProcessOutcome
    /// Spawn to exit, measured inside the guest.
    public var durationMicros: Int64?

    public init(pid: Int32, stdout: [UInt8], stderr: [UInt8], outcome: ProcessOutcome, durationMicros: Int64? = nil) {
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.outcome = outcome
        self.durationMicros = durationMicros
    }

    init(_ result: CommandResult) {
        self.init(
            pid: result.pid, stdout: result.stdout, stderr: result.stderr,
            outcome: ProcessOutcome(exitCode: result.exitCode, signal: result.signal, error: result.error),
            durationMicros: result.durationMicros)
    }

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    public var exitCode: Int32 { outcome.exitCode }
}

/// A process in a sandbox, by pid: what the host can do to it. It keeps the sandbox's
/// agent to itself; whoever holds one drives the process and nothing else.
public struct SandboxProcess: Sendable {
    public let pid: Int32
    private let agent: GuestAgentClient

    init(pid: Int32, agent: GuestAgentClient) {
        self.pid = pid
        self.agent = agent
    }

    /// Sends bytes to its stdin (or its terminal); `close` ends its stdin after them.
    public func write(_ bytes: [UInt8]?, close: Bool = false) async throws {
        try await agent.sendInput(pid: pid, data: bytes, close: close)
    }

    /// Sends it a signal (SIGKILL unless told).
    public func kill(signal: Int32 = 9) async throws {
        try await agent.signal(pid: pid, signal: signal)
    }

    /// Resizes its terminal.
    public func resize(to size: PTYSize) async throws {
        try await agent.resize(pid: pid, size: size)
    }

    /// Its state and the output the agent kept (fails with `.notFound` for an unknown pid).
    public func output() async throws -> ProcessOutput {
        try await agent.processOutput(pid: pid)
    }

    /// Follows its events until `end` (with `replay`, the output so far first); throwing
    /// from `onEvent` or cancelling stops following, the process runs on.
    public func attach(replay: Bool = true, onEvent: @escaping @Sendable (ProcessEvent) async throws -> Void) async throws {
        try await agent.connectProcess(ProcessSelector(pid: pid, replay: replay), onEvent: onEvent)
    }
}

extension Sandbox {
    /// Runs a process to its end and collects its output. The agent ends it at the
    /// request's `timeoutMillis`; the host stops waiting at `hostTimeout` whatever the
    /// guest does (`.timeout`).
    public func exec(_ request: ProcessStartRequest, hostTimeout: Duration? = nil) async throws -> ProcessResult {
        ProcessResult(try await agent.run(request, timeout: hostTimeout))
    }

    /// Starts a process and returns it once the agent has started it. With `onEvent`, its
    /// events keep flowing there until it ends; without, its output stays in the agent
    /// (`SandboxProcess.output`, `attach`).
    public func start(
        _ request: ProcessStartRequest, onEvent: (@Sendable (ProcessEvent) async throws -> Void)? = nil
    ) async throws -> SandboxProcess {
        SandboxProcess(pid: try await agent.startDetached(request, onEvent: onEvent), agent: agent)
    }

    /// The process with this pid (whether it exists is the agent's answer to what is done with it).
    public func process(pid: Int32) -> SandboxProcess {
        SandboxProcess(pid: pid, agent: agent)
    }

    /// The processes the agent knows, running ones and (with `includeFinished`) ended ones.
    public func processes(includeFinished: Bool = false) async throws -> [GuestProcessInfo] {
        try await agent.listProcesses(includeFinished: includeFinished)
    }
}
