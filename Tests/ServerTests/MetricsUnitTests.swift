import Testing

@testable import OmniRunControl
@testable import OmniRunServer

@Suite("Server metrics exposition")
struct MetricsUnitTests {
    @Test func countersHistogramsAndGaugesInPrometheusTextFormat() {
        let metrics = ServerMetrics()
        metrics.increment("omnirun_commands_total{kind=\"foreground\"}")
        metrics.increment("omnirun_commands_total{kind=\"foreground\"}")
        metrics.increment("omnirun_commands_total{kind=\"code\"}")
        metrics.observe("omnirun_sandbox_create_seconds", seconds: 0.3)
        metrics.observe("omnirun_sandbox_create_seconds", seconds: 7)
        let text = metrics.exposition(gauges: [("omnirun_sandboxes", "By state.", [("{state=\"running\"}", 2)])])
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains("# TYPE omnirun_sandboxes gauge"))
        #expect(lines.contains("omnirun_sandboxes{state=\"running\"} 2"))
        #expect(lines.contains("# TYPE omnirun_commands_total counter"))
        #expect(lines.contains("omnirun_commands_total{kind=\"foreground\"} 2"))
        #expect(lines.contains("omnirun_commands_total{kind=\"code\"} 1"))
        // Counters never touched are still exposed, at zero.
        #expect(lines.contains("omnirun_sandbox_resumes_total 0"))
        // Buckets are cumulative; +Inf equals the count.
        #expect(lines.contains("omnirun_sandbox_create_seconds_bucket{le=\"0.25\"} 0"))
        #expect(lines.contains("omnirun_sandbox_create_seconds_bucket{le=\"0.5\"} 1"))
        #expect(lines.contains("omnirun_sandbox_create_seconds_bucket{le=\"10\"} 2"))
        #expect(lines.contains("omnirun_sandbox_create_seconds_bucket{le=\"+Inf\"} 2"))
        #expect(lines.contains("omnirun_sandbox_create_seconds_count 2"))
        #expect(lines.contains("omnirun_sandbox_create_seconds_sum 7.3"))
        // Every sample line is `name{labels} value`.
        for line in lines where !line.hasPrefix("#") {
            #expect(line.split(separator: " ").count == 2, "\(line)")
        }
    }
}
