import Foundation
import OmniRunError

/// How many restored machines the warm pool keeps ready per template.
///
/// `fixed(n)` keeps `n` per template that was prepared or created from. `auto` follows
/// demand: each template in use starts at `minimum`; a create that finds its pool empty
/// doubles the template's target, a take that empties it adds one, both up to `maximum`
/// and to what `memoryBudgetMiB` allows for all templates together; a template without a
/// create for `shrinkAfter` halves its target towards `minimum`, and one unused for
/// `forgetAfter` (not prepared at start) keeps none.
public struct WarmPoolPolicy: Sendable, Equatable, CustomStringConvertible {
    public var adaptive: Bool
    /// Machines per template in use, even when idle (fixed: the size).
    public var minimum: Int
    /// Machines per template at most.
    public var maximum: Int
    /// All pooled machines together, by their measured memory (PSS) or `machineMiB`.
    public var memoryBudgetMiB: Int
    /// A pooled machine's memory until one has been measured.
    public var machineMiB: Int = 96
    /// Restores for the pool running at once (all templates).
    public var parallelism: Int
    public var shrinkAfter: Duration = .seconds(60)
    public var forgetAfter: Duration = .seconds(1800)

    public static func fixed(_ size: Int) -> WarmPoolPolicy {
        let size = max(0, size)
        return WarmPoolPolicy(
            adaptive: false, minimum: size, maximum: size, memoryBudgetMiB: Int.max, parallelism: Self.cores)
    }

    /// Follows demand: at least `minimum`, at most `maximum` (default 4 × cores) per
    /// template, within `memoryBudgetMiB` (default an eighth of the host's memory).
    public static func auto(minimum: Int = 1, maximum: Int? = nil, memoryBudgetMiB: Int? = nil) -> WarmPoolPolicy {
        let physicalMiB = Int(clamping: Foundation.ProcessInfo.processInfo.physicalMemory >> 20)
        return WarmPoolPolicy(
            adaptive: true, minimum: max(0, minimum), maximum: max(max(0, minimum), maximum ?? 4 * Self.cores),
            memoryBudgetMiB: max(0, memoryBudgetMiB ?? physicalMiB / 8), parallelism: Self.cores)
    }

    static var cores: Int { max(1, Foundation.ProcessInfo.processInfo.activeProcessorCount) }

    public var isEnabled: Bool { maximum > 0 }

    /// `N` (fixed; 0 disables), `auto`, or `auto:min=1,max=16,memory=2048` (MiB).
    public init(parsing text: String) throws {
        let text = text.trimmingCharacters(in: .whitespaces).lowercased()
        if let size = Int(text) {
            guard size >= 0, size <= 1000 else { throw OmniRunError(.invalidArgument, "a warm pool holds 0 to 1000 machines, not \(size)") }
            self = .fixed(size)
            return
        }
        guard text == "auto" || text.hasPrefix("auto:") else {
            throw OmniRunError(.invalidArgument, "the warm pool is a number or auto[:min=N,max=N,memory=MiB], not '\(text)'")
        }
        var minimum = 1
        var maximum: Int? = nil
        var memory: Int? = nil
        for part in text.dropFirst(5).split(separator: ",") where !part.isEmpty {
            let pair = part.split(separator: "=", maxSplits: 1).map { String($0) }
            guard pair.count == 2, let value = Int(pair[1]), value >= 0, value <= 1_000_000 else {
                throw OmniRunError(.invalidArgument, "warm pool setting '\(part)' is not key=number")
            }
            switch pair[0] {
            case "min": minimum = value
            case "max": maximum = value
            case "memory": memory = value
            default: throw OmniRunError(.invalidArgument, "unknown warm pool setting '\(pair[0])' (min, max, memory)")
            }
        }
        if let maximum, maximum < minimum {
            throw OmniRunError(.invalidArgument, "the warm pool's max (\(maximum)) is below its min (\(minimum))")
        }
        self = .auto(minimum: minimum, maximum: maximum, memoryBudgetMiB: memory)
    }

    init(adaptive: Bool, minimum: Int, maximum: Int, memoryBudgetMiB: Int, parallelism: Int) {
        self.adaptive = adaptive
        self.minimum = minimum
        self.maximum = maximum
        self.memoryBudgetMiB = memoryBudgetMiB
        self.parallelism = parallelism
    }

    public var description: String {
        adaptive ? "auto (min \(minimum), max \(maximum), memory \(memoryBudgetMiB) MiB)" : "\(maximum)"
    }
}
