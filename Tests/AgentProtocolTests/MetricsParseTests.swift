import AgentProtocol
import Testing

@Suite struct MetricsParseTests {
    @Test func procStatAndMeminfoParse() {
        let stat = "cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 100 5 50 800 20 3 2 0 0 0\nintr 1 2 3\n"
        let meminfo = "MemTotal:         262144 kB\nMemFree:           10000 kB\nMemAvailable:     200000 kB\nBuffers: 1 kB\n"
        let parsed = GuestMetrics.parse(stat: stat, meminfo: meminfo)
        // Busy: user + nice + system + irq + softirq + steal; idle and iowait are not.
        #expect(parsed.busy == 160)
        #expect(parsed.total == 980)
        #expect(parsed.memTotal == 262_144 * 1024)
        #expect(parsed.memUsed == (262_144 - 200_000) * 1024)
    }

    @Test func missingFieldsGiveZeroesNotCrashes() {
        let parsed = GuestMetrics.parse(stat: "garbage", meminfo: "MemTotal: x kB\n")
        #expect(parsed.busy == 0 && parsed.total == 0 && parsed.memTotal == 0 && parsed.memUsed == 0)
    }
}
