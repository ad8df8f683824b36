import Foundation
import OmniRunCore
import OmniRunError
import OmniRunStore

/// Terminal sessions whose output is buffered on the server until read (wire §7:
/// polling, no WebSocket).
///
/// A session belongs to the host: `reserve` issues it before the terminal starts, and the
/// terminal's output stream writes through that handle only. The pid the agent reports
/// is just the name clients use in URLs; it is taken once, must be positive, and one
/// already naming a live terminal of the sandbox is refused, so a guest that lies about
/// pids can neither read nor grow another terminal's buffer. Bounded: a buffer keeps the
/// newest `maxBuffered` bytes; a sandbox has at most `maxLive` live terminals and keeps
/// `maxEnded` ended ones for a last read. An ended terminal's buffer is freed once read,
/// and everything of a sandbox goes when it ends (`removeAll`).
package actor PTYSessions {
    /// The host's handle of one session.
    package struct Token: Hashable, Sendable {
        fileprivate let value: UInt64
    }

    package struct Session {
        package var sandbox: SandboxID
        package var pid: Int32?
        package var output: [UInt8] = []
        package var running = true
        package var startedAt: Int64
        package var endedAt: Int64?
        package var exitCode: Int32?
        package var carry = UTF8Carry()
    }

    package static let maxBuffered = 4 << 20
    package static let maxLive = 32
    package static let maxEnded = 32

    private var sessions: [Token: Session] = [:]
    /// Client-visible names: sandbox → pid → session.
    private var names: [SandboxID: [Int32: Token]] = [:]
    private var issued: UInt64 = 0

    /// A session for a terminal about to start in `sandbox`.
    package func reserve(_ sandbox: SandboxID, startedAt: Int64) throws -> Token {
        let live = sessions.values.filter { $0.sandbox == sandbox && $0.running }.count
        guard live < Self.maxLive else {
            throw OmniRunError(.conflict, "this sandbox has \(Self.maxLive) terminals open; end one first (DELETE /pty/{pid})")
        }
        issued += 1
        let token = Token(value: issued)
        sessions[token] = Session(sandbox: sandbox, startedAt: startedAt)
        return token
    }

    /// Names the session by the pid the agent reported for it (once).
    package func bind(_ token: Token, pid reported: Int32?) throws {
        guard var session = sessions[token] else { return }
        guard let pid = reported, pid > 0 else {
            throw OmniRunError(.protocolViolation, "the agent reported the terminal's pid as \(reported.map { "\($0)" } ?? "none")")
        }
        guard session.pid == nil else {
            throw OmniRunError(.protocolViolation, "the agent reported a second pid (\(pid)) for the terminal \(session.pid ?? 0)")
        }
        if let holder = names[session.sandbox]?[pid], holder != token {
            if sessions[holder]?.running == true {
                throw OmniRunError(.agentError, "the agent reported pid \(pid) for a new terminal, but a running terminal has it")
            }
            // A pid reused after its terminal ended: the ended session's last output goes.
            sessions[holder] = nil
        }
        session.pid = pid
        sessions[token] = session
        names[session.sandbox, default: [:]][pid] = token
    }

    /// A start that failed: its session goes.
    package func release(_ token: Token) {
        guard let session = sessions.removeValue(forKey: token) else { return }
        if let pid = session.pid, names[session.sandbox]?[pid] == token { names[session.sandbox]?[pid] = nil }
    }

    package func append(_ token: Token, _ bytes: [UInt8]) {
        guard sessions[token]?.running == true else { return }
        sessions[token]!.output += bytes
        // Trimmed in steps (never above twice the bound), so a flood of small chunks
        // does not move megabytes for each one; reads return the newest `maxBuffered`.
        if sessions[token]!.output.count > 2 * Self.maxBuffered {
            sessions[token]!.output.removeFirst(sessions[token]!.output.count - Self.maxBuffered)
        }
    }

    package func ended(_ token: Token, exitCode: Int32?) {
        guard var session = sessions[token], session.running else { return }
        session.running = false
        session.exitCode = exitCode
        session.endedAt = nowMillis()
        sessions[token] = session
        // The oldest ended sessions of the sandbox go beyond `maxEnded`.
        let ended = sessions.filter { $0.value.sandbox == session.sandbox && !$0.value.running }
            .sorted { ($0.value.endedAt ?? 0) < ($1.value.endedAt ?? 0) }
        for (old, _) in ended.dropLast(Self.maxEnded) { release(old) }
    }

    private func token(_ sandbox: SandboxID, _ pid: Int32) -> Token? {
        guard let token = names[sandbox]?[pid], sessions[token] != nil else { return nil }
        return token
    }

    /// The output since the last read (the newest `maxBuffered` bytes); an ended
    /// session's buffer is freed by its last read.
    package func drain(_ sandbox: SandboxID, pid: Int32) throws -> String {
        guard let token = token(sandbox, pid), var session = sessions[token] else {
            throw OmniRunError(.notFound, "no terminal with pid \(pid)")
        }
        let bytes = session.output.suffix(Self.maxBuffered)
        session.output = []
        var text = session.carry.text(Array(bytes))
        if !session.running { text += session.carry.flush() }
        sessions[token] = session
        return text
    }

    package func exists(_ sandbox: SandboxID, pid: Int32) -> Bool { token(sandbox, pid) != nil }

    /// The named sessions of a sandbox (one still waiting for its pid is not listed).
    package func list(_ sandbox: SandboxID) -> [Session] {
        sessions.values.filter { $0.sandbox == sandbox && $0.pid != nil }.sorted { ($0.pid ?? 0) < ($1.pid ?? 0) }
    }

    package func remove(_ sandbox: SandboxID, pid: Int32) {
        if let token = token(sandbox, pid) { release(token) }
    }

    package func removeAll(_ sandbox: SandboxID) {
        sessions = sessions.filter { $0.value.sandbox != sandbox }
        names[sandbox] = nil
    }

    /// Bytes buffered for a sandbox's terminals, and how many sessions it has (tests, metrics).
    package func usage(_ sandbox: SandboxID) -> (sessions: Int, bytes: Int) {
        let mine = sessions.values.filter { $0.sandbox == sandbox }
        return (mine.count, mine.reduce(0) { $0 + $1.output.count })
    }

    /// Every sandbox's terminals together (`omnirun_terminal_*` in `GET /metrics`).
    package func totalUsage() -> (sessions: Int, bytes: Int) {
        (sessions.count, sessions.values.reduce(0) { $0 + $1.output.count })
    }
}
