import Foundation
import NIOConcurrencyHelpers

/// The server's own counters and histograms, written out in Prometheus' text
/// exposition format (version 0.0.4) by `GET /metrics`. Gauges that the store or the
/// runtime know (sandboxes by state, LLM spend) are read at scrape time instead.
package final class ServerMetrics: Sendable {
    package struct Histogram: Sendable {
        package let bounds: [Double]
        package var counts: [UInt64]
        package var sum = 0.0
        package var count: UInt64 = 0

        package init(bounds: [Double]) {
            self.bounds = bounds
            counts = Array(repeating: 0, count: bounds.count)
        }

        package mutating func observe(_ value: Double) {
            for (index, bound) in bounds.enumerated() where value <= bound { counts[index] += 1 }
            sum += value
            count += 1
        }
    }

    private struct State: Sendable {
        package var counters: [String: UInt64] = [:]
        package var histograms: [String: Histogram] = [:]
    }
    private let state = NIOLockedValueBox(State())
    package static let latencyBounds = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

    /// Counts one event (`name` carries its labels, e.g. `omnirun_commands_total{kind="run"}`).
    package func increment(_ name: String, by amount: UInt64 = 1) {
        state.withLockedValue { $0.counters[name, default: 0] += amount }
    }

    package func observe(_ name: String, seconds: Double) {
        state.withLockedValue { state in
            var histogram = state.histograms[name] ?? Histogram(bounds: Self.latencyBounds)
            histogram.observe(seconds)
            state.histograms[name] = histogram
        }
    }

    package static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// The exposition text: `gauges` (name with labels → value) first, then counters and histograms.
    package func exposition(gauges: [(name: String, help: String, samples: [(labels: String, value: Double)])]) -> String {
        let snapshot = state.withLockedValue { $0 }
        var out = ""
        for gauge in gauges {
            out += "# HELP \(gauge.name) \(gauge.help)\n# TYPE \(gauge.name) gauge\n"
            for sample in gauge.samples { out += "\(gauge.name)\(sample.labels) \(Self.format(sample.value))\n" }
        }
        for (family, help) in Self.counterHelp {
            out += "# HELP \(family) \(help)\n# TYPE \(family) counter\n"
            let samples = snapshot.counters.filter { $0.key == family || $0.key.hasPrefix(family + "{") }
            if samples.isEmpty { out += "\(family) 0\n" }
            for (name, value) in samples.sorted(by: { $0.key < $1.key }) { out += "\(name) \(value)\n" }
        }
        for (family, help) in Self.histogramHelp {
            out += "# HELP \(family) \(help)\n# TYPE \(family) histogram\n"
            let histogram = snapshot.histograms[family] ?? Histogram(bounds: Self.latencyBounds)
            for (index, bound) in histogram.bounds.enumerated() {
                out += "\(family)_bucket{le=\"\(Self.format(bound))\"} \(histogram.counts[index])\n"
            }
            out += "\(family)_bucket{le=\"+Inf\"} \(histogram.count)\n"
            out += "\(family)_sum \(Self.format(histogram.sum))\n\(family)_count \(histogram.count)\n"
        }
        return out
    }

    package static let counterHelp: [(String, String)] = [
        ("omnirun_sandboxes_created_total", "Sandboxes created."),
        ("omnirun_sandbox_create_failures_total", "Creates that failed because the machine did not come up (restore failures)."),
        ("omnirun_sandboxes_ended_total", "Sandboxes ended, by reason."),
        ("omnirun_sandbox_pauses_total", "Sandboxes paused, by reason."),
        ("omnirun_sandbox_resumes_total", "Sandboxes resumed."),
        ("omnirun_commands_total", "Commands and code runs started through the API, by kind."),
    ]

    package static let histogramHelp: [(String, String)] = [
        ("omnirun_sandbox_create_seconds", "Time to create a sandbox (restore or warm pool, until its agent answers)."),
        ("omnirun_sandbox_pause_seconds", "Time to pause a sandbox (save memory, devices and disk, stop its VMM)."),
        ("omnirun_sandbox_resume_seconds", "Time to resume a paused sandbox (until its agent answers)."),
        ("omnirun_sandbox_fork_seconds", "Time to fork a sandbox (save it, resume it and every copy)."),
    ]

    package static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
