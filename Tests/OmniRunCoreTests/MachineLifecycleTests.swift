import OmniRunCore
import OmniRunError
import Testing

@Suite struct MachineLifecycleTests {
    @Test func normalLifeOfAMachine() throws {
        var lifecycle = MachineLifecycle()
        try lifecycle.transition(to: .starting)
        try lifecycle.transition(to: .running)
        try lifecycle.transition(to: .paused)
        try lifecycle.transition(to: .running)
        try lifecycle.transition(to: .stopping)
        try lifecycle.transition(to: .stopped(.requested))
        #expect(lifecycle.state.isTerminal)
    }

    @Test func stoppedIsTerminal() throws {
        var lifecycle = MachineLifecycle()
        try lifecycle.transition(to: .starting)
        try lifecycle.transition(to: .stopped(.crashed("boom")))
        for next in [MachineState.running, .starting, .paused, .stopping, .stopped(.requested)] {
            #expect(throws: OmniRunError.self) { try lifecycle.transition(to: next) }
        }
    }

    @Test(arguments: [
        (MachineState.created, MachineState.running),
        (.created, .paused),
        (.running, .starting),
        (.stopping, .running),
        (.paused, .starting),
    ])
    func illegalMovesThrow(from: MachineState, to: MachineState) {
        #expect(!MachineLifecycle.allowed(from: from, to: to))
    }
}

@Suite struct SandboxIDTests {
    @Test func randomIDsAreDNSSafeAndValid() {
        for _ in 0..<1000 {
            let id = SandboxID.random()
            #expect(SandboxID.isValid(id.rawValue))
            #expect(id.hostname.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" })
        }
    }

    @Test(arguments: ["sb_ABCDEFGH", "sb_1234567", "xx_12345678", "sb_1234567-", "", "sb_123456789"])
    func invalidIDsAreRejected(_ value: String) {
        #expect(SandboxID(value) == nil)
    }
}
