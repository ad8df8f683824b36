#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public struct PTYSize: Codable, Sendable, Equatable {
    public var cols: Int
    public var rows: Int
    public init(cols: Int, rows: Int) {
        self.cols = cols
        self.rows = rows
    }
}

/// Start a process. Either `shell` (run as `/bin/bash -l -c shell`) or `argv` must be set.
/// The answer is an event stream: `start`, then output chunks, then `end`.
public struct ProcessStartRequest: Codable, Sendable {
    public var shell: String?
    public var argv: [String]?
    public var env: [String: String]
    public var cwd: String?
    public var user: String?
    /// Kill the process (SIGKILL to its group) after this many milliseconds; nil = never.
    public var timeoutMillis: Int64?
    /// Keep stdin open for `process/input`; when false stdin is /dev/null.
    public var stdin: Bool
    public var pty: PTYSize?
    /// An optional name to re-attach by.
    public var tag: String?

    public init(
        shell: String? = nil, argv: [String]? = nil, env: [String: String] = [:], cwd: String? = nil,
        user: String? = nil, timeoutMillis: Int64? = nil, stdin: Bool = false, pty: PTYSize? = nil,
        tag: String? = nil
    ) {
        self.shell = shell
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.user = user
        self.timeoutMillis = timeoutMillis
        self.stdin = stdin
        self.pty = pty
        self.tag = tag
    }
}

/// Re-attach to a process by pid or tag. With `replay`, the output kept so far is sent first.
public struct ProcessSelector: Codable, Sendable {
    public var pid: Int32?
    public var tag: String?
    public var replay: Bool
    public init(pid: Int32? = nil, tag: String? = nil, replay: Bool = true) {
        self.pid = pid
        self.tag = tag
        self.replay = replay
    }
}

public struct ProcessInputRequest: Codable, Sendable {
    public var pid: Int32
    /// Base64 bytes to write to stdin (or the PTY).
    public var data: String?
    /// Close stdin after writing.
    public var close: Bool
    public init(pid: Int32, data: String? = nil, close: Bool = false) {
        self.pid = pid
        self.data = data
        self.close = close
    }
}

public struct ProcessSignalRequest: Codable, Sendable {
    public var pid: Int32
    public var signal: Int32
    public init(pid: Int32, signal: Int32) {
        self.pid = pid
        self.signal = signal
    }
}

public struct ProcessResizeRequest: Codable, Sendable {
    public var pid: Int32
    public var size: PTYSize
    public init(pid: Int32, size: PTYSize) {
        self.pid = pid
        self.size = size
    }
}

/// One line of a process event stream.
public struct ProcessEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case start, stdout, stderr, pty, end
        /// Output was dropped from the replay buffer (it exceeded the agent's bound).
        case truncated
    }

    public var type: Kind
    public var pid: Int32?
    /// Base64 bytes for output events.
    public var data: String?
    public var exitCode: Int32?
    public var signal: Int32?
    /// Set on `end` when the process never ran or was killed by the agent (timeout).
    public var error: String?
    public var timestampMillis: Int64?
    /// On `end`: microseconds from spawn to exit, measured in the guest.
    public var durationMicros: Int64?

    public init(
        type: Kind, pid: Int32? = nil, data: String? = nil, exitCode: Int32? = nil, signal: Int32? = nil,
        error: String? = nil, timestampMillis: Int64? = nil, durationMicros: Int64? = nil
    ) {
        self.durationMicros = durationMicros
        self.type = type
        self.pid = pid
        self.data = data
        self.exitCode = exitCode
        self.signal = signal
        self.error = error
        self.timestampMillis = timestampMillis
    }

    public var bytes: [UInt8]? {
        guard let data, let decoded = Data(base64Encoded: data) else { return nil }
        return [UInt8](decoded)
    }
}

public struct GuestProcessInfo: Codable, Sendable, Equatable {
    public var pid: Int32
    public var tag: String?
    public var command: String
    public var user: String
    public var cwd: String
    public var pty: Bool
    public var running: Bool
    public var exitCode: Int32?
    public var signal: Int32?
    public var startedAtMillis: Int64
    public var endedAtMillis: Int64?

    public init(
        pid: Int32, tag: String?, command: String, user: String, cwd: String, pty: Bool, running: Bool,
        exitCode: Int32?, signal: Int32?, startedAtMillis: Int64, endedAtMillis: Int64?
    ) {
        self.pid = pid
        self.tag = tag
        self.command = command
        self.user = user
        self.cwd = cwd
        self.pty = pty
        self.running = running
        self.exitCode = exitCode
        self.signal = signal
        self.startedAtMillis = startedAtMillis
        self.endedAtMillis = endedAtMillis
    }
}

/// `GET /v1/process/output?pid=`: what a process has written so far (bounded by the
/// agent's replay buffer) and how it stands.
public struct ProcessOutput: Codable, Sendable {
    public var info: GuestProcessInfo
    /// Base64.
    public var stdout: String
    /// Base64.
    public var stderr: String
    public var truncated: Bool

    public init(info: GuestProcessInfo, stdout: String, stderr: String, truncated: Bool) {
        self.info = info
        self.stdout = stdout
        self.stderr = stderr
        self.truncated = truncated
    }
}
