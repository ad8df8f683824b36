/// Where a sandbox is in its life. The raw values are what the `state` column holds.
public enum SandboxState: String, Sendable, CaseIterable {
    case running
    case paused
    case ended

    /// Whether the sandbox still exists for its owner (it runs or can be resumed).
    public var isLive: Bool { self != .ended }
}

/// What an account may do beyond its own sandboxes. The raw values are what the `role`
/// column holds.
public enum AccountRole: String, Sendable, CaseIterable {
    /// The server's first account: every model of the LLM proxy, not only the free tier.
    case owner
    case user
}

/// Why a sandbox ended. The raw values are what the `end_reason` column holds and what
/// `GET /sandboxes/history` shows (`failed: <what>` for a machine that failed).
public enum EndReason: Sendable, Equatable, Hashable, RawRepresentable, CustomStringConvertible {
    /// Its owner (or an admin) killed it.
    case killed
    /// Its timeout passed.
    case timeout
    /// It was idle past the server's idle timeout.
    case idle
    /// It was paused past the paused-sandbox retention.
    case retention
    /// Its machine was gone when the server started again.
    case lost
    /// Its machine failed; the text says how (a pause, a fork, the machine's exit).
    case failed(String)

    private static let failedPrefix = "failed: "

    public init(rawValue: String) {
        switch rawValue {
        case "killed": self = .killed
        case "timeout": self = .timeout
        case "idle": self = .idle
        case "retention": self = .retention
        case "lost": self = .lost
        default:
            self = .failed(rawValue.hasPrefix(Self.failedPrefix) ? String(rawValue.dropFirst(Self.failedPrefix.count)) : rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .killed: "killed"
        case .timeout: "timeout"
        case .idle: "idle"
        case .retention: "retention"
        case .lost: "lost"
        case .failed(let what): Self.failedPrefix + what
        }
    }

    /// The reason's kind without the details (what metrics are labelled with).
    public var kind: String {
        if case .failed = self { return "failed" }
        return rawValue
    }

    public var description: String { rawValue }
}
