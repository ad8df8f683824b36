import Foundation

/// The ratios the benchmark exists for, and the targets they are held to.
struct Targets {
    let report: BenchReport

    private func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? a / b : 0 }

    func summary() -> String {
        var lines = ["## Ratios (p50 unless named)", ""]
        let coldP50 = report.p(Row.cold, 50)
        func line(_ text: String, _ value: Double, target: String? = nil, met: Bool? = nil) {
            var out = String(format: "- %@: %.3f", text, value)
            if let target, let met { out += " (target \(target): \(met ? "met" : "MISSED"))" }
            lines.append(out)
        }
        if report.has(Row.restore) { line("restore / cold boot", ratio(report.p(Row.restore, 50), coldP50)) }
        if report.has(Row.apiFirst) {
            let first = report.p(Row.apiFirst, 50)
            let firstP95 = report.p(Row.apiFirst, 95)
            lines.append(
                String(
                    format: "- API create → first output (warm pool): p50 %.1f ms (target ≤ 100: %@), p95 %.1f ms (target ≤ 200: %@)",
                    first, first <= 100 ? "met" : "MISSED", firstP95, firstP95 <= 200 ? "met" : "MISSED"))
            line("API create → first output / cold boot", ratio(first, coldP50), target: "≤ 0.05", met: ratio(first, coldP50) <= 0.05)
            if report.has(Row.container) {
                line("API create → first output / container-style start", ratio(first, report.p(Row.container, 50)))
            }
        }
        if report.has(Row.apiRestoreFirst) {
            line("API create → first output, restore without pool / cold boot", ratio(report.p(Row.apiRestoreFirst, 50), coldP50))
        }
        for (trip, spawned, loop) in [Row.trueRTT, Row.pythonRTT] where report.has(trip) {
            let value = ratio(report.p(trip, 50), report.p(loop, 50))
            line("\(trip) / its cost in a guest shell loop", value, target: "≤ 1.5", met: value <= 1.5)
            line("\(trip) / spawn→exit as the agent saw it", ratio(report.p(trip, 50), report.p(spawned, 50)))
        }
        if report.has(Row.apiTrue) {
            line("API `true` round trip (bash -c) / `true` in a guest shell loop", ratio(report.p(Row.apiTrue, 50), report.p(Row.trueRTT.2, 50)))
        }
        let single = report.p(Row.apiCreate, 50)
        for name in report.order where single > 0 && name.hasPrefix("burst of") && name.hasSuffix("create answered") {
            let p95 = report.p(name, 95)
            line("\(name): p95 / single create p50", ratio(p95, single), target: "≤ 3", met: ratio(p95, single) <= 3)
        }
        for figure in report.figures where figure.name.hasPrefix("burst") && figure.name.hasSuffix("failures") {
            line(figure.name, figure.value, target: "0", met: figure.value == 0)
        }
        if let running = figure("density: idle sandboxes running"), let pss = figure("density: host PSS per sandbox (median)") {
            line("density: sandboxes running", running, target: "≥ 50", met: running >= 50)
            line("density: PSS per sandbox, MiB (median)", pss, target: "≤ 56", met: pss <= 56)
        }
        if let disk = figure("files: host disk write rate") {
            for name in report.figures.map(\.name) where name.hasPrefix("files: upload") || name.hasPrefix("files: download") {
                let value = ratio(figure(name) ?? 0, disk)
                line("\(name) / host disk write rate", value, target: "≥ 0.5", met: value >= 0.5)
            }
            if let guest = figure("files: the guest's own disk write rate (dd inside)") {
                line("files: upload / the guest's own disk write rate", ratio(report.figures.first { $0.name.hasPrefix("files: upload") }?.value ?? 0, guest))
            }
            if let before = figure("files: server RSS before") {
                let growth = max(figure("files: server RSS peak during upload") ?? 0, figure("files: server RSS peak during download") ?? 0) - before
                line("files: server RSS growth during the transfers, MiB", growth, target: "flat (< 64 MiB)", met: growth < 64)
            }
        }
        lines += creates()
        return lines.joined(separator: "\n")
    }

    /// Creates that keep up: back-to-back against paced, a burst against the CPU floor,
    /// restore → agent ready against the previous path.
    private func creates() -> [String] {
        var lines: [String] = []
        func line(_ text: String, _ value: Double, target: String, met: Bool) {
            lines.append(String(format: "- %@: %.3f (target %@: %@)", text, value, target, met ? "met" : "MISSED"))
        }
        if report.has(CreatesBench.Row.backToBack), report.has(CreatesBench.Row.paced) {
            let value = ratio(report.p(CreatesBench.Row.backToBack, 50), report.p(CreatesBench.Row.paced, 50))
            line("creates: back-to-back p50 / paced (pool-hit) p50", value, target: "≤ 2", met: value <= 2)
        }
        if let floor = report.figures.first(where: { $0.name.hasPrefix("creates: CPU floor") })?.value,
            let name = report.order.first(where: { $0.hasPrefix("creates: burst") && $0.hasSuffix("(auto pool)") })
        {
            let value = ratio(report.p(name, 95), floor)
            line("creates: burst p95 / its CPU floor (\(String(format: "%.0f", floor)) ms)", value, target: "≤ 1.5", met: value <= 1.5)
        }
        for (trip, _, loop) in [Row.trueRTT, Row.pythonRTT] where report.has(trip) && report.has(trip + Row.previous) {
            let value = ratio(report.p(trip, 50), report.p(trip + Row.previous, 50))
            lines.append(
                String(
                    format: "- %@ / the previous path's: %.3f (in a guest shell loop: %.3f)", trip, value,
                    ratio(report.p(loop, 50), report.p(loop + Row.previous, 50))))
        }
        if report.has(Row.restore), report.has(Row.restoreBefore) {
            let value = ratio(report.p(Row.restore, 50), report.p(Row.restoreBefore, 50))
            line("restore → agent ready / the previous path's", value, target: "≤ 0.5", met: value <= 0.5)
        }
        return lines.isEmpty ? [] : [""] + lines
    }

    private func figure(_ name: String) -> Double? {
        report.figures.first { $0.name == name }?.value
    }
}
