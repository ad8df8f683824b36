import Foundation
import OmniRunError
import Testing

@testable import TemplateBuilder

/// What a build takes from its build machine is bounded: a log line's length, a step's time.
@Suite("Build machine output and time bounds")
struct BuildBoundsTests {
    @Test func aLogLineKeepsItsFirst16KiB() {
        #expect(StepOutput.text(Array("short".utf8)[...]) == "short")
        let long = [UInt8](repeating: UInt8(ascii: "a"), count: 5 << 20)
        let line = StepOutput.text(long[...])
        #expect(line.utf8.count < StepOutput.maxLineBytes + 64)
        #expect(line.hasSuffix("(\((5 << 20) - StepOutput.maxLineBytes) more bytes)"))
        // Through the collector: one endless line and many long ones end up bounded in the log.
        let log = BuildLog(path: nil, maxBytes: 64 << 10)
        let collector = StepOutput(log: log)
        for _ in 0..<64 { collector.add(Data(repeating: UInt8(ascii: "b"), count: 64 << 10)) }
        collector.add(Data((String(repeating: "c", count: 1 << 20) + "\n").utf8))
        collector.flush()
        #expect(!log.text.isEmpty)
        #expect(log.text.allSatisfy { (line: String) in line.utf8.count < StepOutput.maxLineBytes + 64 }, "\(log.text.map(\.count))")
    }

    @Test func aStepThatOutlivesItsDeadlineFailsWithATimeout() async throws {
        let started = ContinuousClock.now
        do {
            _ = try await TemplateBuilder.within(.milliseconds(200), what: "build step RUN sleep") {
                try await Task.sleep(for: .seconds(30))
                return 1
            }
            Issue.record("the deadline passed unnoticed")
        } catch let error as OmniRunError {
            #expect(error.code == .timeout)
            #expect(error.message.contains("build step RUN sleep"))
        }
        // Far less than the 30 s the body would take (with room for a loaded host).
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(try await TemplateBuilder.within(.seconds(5), what: "x") { 42 } == 42)
    }
}
