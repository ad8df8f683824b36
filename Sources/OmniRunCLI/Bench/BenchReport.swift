import Foundation

/// Named latency histograms and single figures, printed as tables and saved as JSON.
struct BenchReport {
    var title: String
    var histograms: [String: Histogram] = [:]
    /// Raw samples, kept for the JSON file (bounded by the run count).
    var samples: [String: [Double]] = [:]
    var order: [String] = []
    /// Figures that are not latencies: (name, value, unit).
    var figures: [(name: String, value: Double, unit: String)] = []
    var notes: [String] = []

    init(title: String) { self.title = title }

    mutating func add(_ name: String, _ milliseconds: Double) {
        if histograms[name] == nil { order.append(name) }
        histograms[name, default: Histogram()].record(milliseconds: milliseconds)
        samples[name, default: []].append(milliseconds)
    }

    mutating func figure(_ name: String, _ value: Double, _ unit: String) {
        figures.append((name, value, unit))
    }

    func p(_ name: String, _ percentile: Double) -> Double {
        histograms[name]?.percentile(percentile) ?? 0
    }

    func has(_ name: String) -> Bool { (histograms[name]?.count ?? 0) > 0 }

    func table(ordering: [String]) -> String {
        var lines = ["## \(title)", "", "| measurement | n | p50 ms | p95 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
        let names = ordering.filter { has($0) } + order.filter { !ordering.contains($0) }
        for name in names {
            lines.append(
                String(
                    format: "| %@ | %d | %.1f | %.1f | %.1f | %.1f |", name, histograms[name]!.count, p(name, 50), p(name, 95),
                    p(name, 99), p(name, 100)))
        }
        if !figures.isEmpty {
            lines += ["", "| figure | value |", "|---|---|"]
            for figure in figures {
                lines.append(String(format: "| %@ | %.2f %@ |", figure.name, figure.value, figure.unit))
            }
        }
        return lines.joined(separator: "\n")
    }

    func writeJSON(to path: String, machine: [String: String]) throws {
        var results: [String: Any] = [:]
        for (name, histogram) in histograms {
            results[name] = [
                "n": histogram.count, "p50": p(name, 50), "p95": p(name, 95), "p99": p(name, 99), "max": p(name, 100),
                "samples": samples[name] ?? [],
            ]
        }
        var figureObject: [String: Any] = [:]
        for figure in figures { figureObject[figure.name] = ["value": figure.value, "unit": figure.unit] }
        let object: [String: Any] = [
            "title": title, "date": ISO8601DateFormatter().string(from: Date()), "machine": machine, "results": results,
            "figures": figureObject, "notes": notes,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }
}
