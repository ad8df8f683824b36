import Testing

@testable import OmniRunCLI

@Suite("Benchmark histogram")
struct HistogramTests {
    @Test func percentilesOfAUniformRangeAreExactToThreeDigits() {
        var histogram = Histogram()
        for ms in 1...1000 { histogram.record(milliseconds: Double(ms)) }
        #expect(histogram.count == 1000)
        for (p, expected) in [(50.0, 500.0), (95.0, 950.0), (99.0, 990.0)] {
            let value = histogram.percentile(p)
            #expect(abs(value - expected) / expected < 0.001, "p\(p) = \(value)")
        }
        #expect(histogram.percentile(100) == 1000)
    }

    @Test func wideRangesKeepTheirPrecision() {
        var histogram = Histogram()
        // 0.05 ms to 100 s in one histogram.
        let values: [Double] = [0.05, 0.5, 5, 50, 500, 5_000, 100_000]
        for value in values { histogram.record(milliseconds: value) }
        for (index, value) in values.enumerated() {
            let p = Double(index + 1) / Double(values.count) * 100
            let reported = histogram.percentile(p)
            #expect(reported >= value && (reported - value) / value < 0.001, "p\(p): \(reported) for \(value)")
        }
    }

    @Test func anEmptyHistogramReportsZero() {
        #expect(Histogram().percentile(50) == 0)
    }

    @Test func theReportComputesPercentilesFromItsHistograms() {
        var report = BenchReport(title: "t")
        for ms in [10.0, 20, 30, 40] { report.add("row", ms) }
        // The highest value of the bucket that holds the rank (20 ms ± 0.1 %).
        #expect(abs(report.p("row", 50) - 20) <= 0.02)
        #expect(report.p("row", 100) == 40)
        #expect(report.table(ordering: ["row"]).contains("| row | 4 | 20.0 |"))
    }
}
