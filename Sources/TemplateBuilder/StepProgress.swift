import Foundation

/// How one step of a build stands: `omnirun template build` and `omni template build` show
/// it, and the build log's server-sent events carry it (`{"type": "step", …}`).
public struct StepProgress: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable {
        /// Started (without `elapsedSeconds`), or still running after that many seconds.
        case running
        /// Its layer was in the cache: it did not run.
        case cached
        case done
        case failed
    }

    /// 1-based, of `total`.
    public var step: Int
    public var total: Int
    /// The Dockerfile line (nil for steps OmniRun adds, such as growing the disk).
    public var line: Int?
    /// The instruction as written.
    public var command: String
    public var status: Status
    public var elapsedSeconds: Double?

    public init(step: Int, total: Int, line: Int?, command: String, status: Status, elapsedSeconds: Double? = nil) {
        self.step = step
        self.total = total
        self.line = line
        self.command = command
        self.status = status
        self.elapsedSeconds = elapsedSeconds
    }

    /// The log line: `step 2/4 (line 5): RUN …`, `… (cached)`, `step 2/4 still running (30s)`,
    /// `step 2/4 done in 11.9s`, `step 2/4 failed after 3.1s`.
    public var text: String {
        let header = "step \(step)/\(total)\(line.map { " (line \($0))" } ?? ""): \(command)"
        let elapsed = String(format: "%.1fs", elapsedSeconds ?? 0)
        switch status {
        case .running: return elapsedSeconds == nil ? header : "step \(step)/\(total) still running (\(Int(elapsedSeconds ?? 0))s)"
        case .cached: return header + " (cached)"
        case .done: return "step \(step)/\(total) done in \(elapsed)"
        case .failed: return "step \(step)/\(total) failed after \(elapsed)"
        }
    }
}
