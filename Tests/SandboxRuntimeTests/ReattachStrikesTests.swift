import Testing

@testable import SandboxRuntime

/// How a re-attach marker left by a start that died counts against a sandbox.
@Suite("Re-attach strikes")
struct ReattachStrikesTests {
    typealias Record = SandboxRuntime.ReattachRecord

    @Test func aMarkerCountsThePhaseTheLastStartReached() {
        #expect(Record.strikes(from: nil) == (0, 0))
        #expect(Record.strikes(from: "attaching 0 0\n") == (1, 0))
        #expect(Record.strikes(from: "attaching 1 2\n") == (2, 2))
        #expect(Record.strikes(from: "probation 1 2\n") == (1, 3))
        #expect(Record.strikes(from: "attaching 9223372036854775807 9223372036854775807") == (3, 3), "no overflow")
        let written = Record(phase: .probation, interrupted: 1, unsettled: 0)
        #expect(Record.strikes(from: written.text) == (1, 1))
    }

    @Test func anUnreadableMarkerCountsAsExhausted() {
        let exhausted = (SandboxRuntime.interruptedStrikes, SandboxRuntime.probationStrikes)
        for text in ["", "garbage", "attaching -1 0", "probation 1", "attaching x y", "resting 0 0"] {
            #expect(Record.strikes(from: text) == exhausted, "\(text)")
        }
    }
}
