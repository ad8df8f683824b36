import Testing

@testable import OmniRunCore

@Suite("Machine socket paths")
struct MachineSocketsTests {
    @Test func aShortFolderKeepsItsSockets() {
        #expect(MachineSockets.path("/var/lib/omnirun/sandboxes/sb_abc", "agent.sock") == "/var/lib/omnirun/sandboxes/sb_abc/agent.sock")
    }

    @Test func aDeepFolderGetsAShortStablePath() {
        let deep = "/root/.cache/omnirun-main/test-runs/run-3260812/servers/e2ee-restart-3260812/sandboxes/sb_6qnca4d2"
        let path = MachineSockets.path(deep, "agent.sock")
        #expect(path.utf8.count <= MachineSockets.maxPathBytes)
        #expect(path.hasPrefix("/tmp/omr-") && path.hasSuffix("-agent.sock"))
        #expect(MachineSockets.path(deep, "agent.sock") == path)
        #expect(MachineSockets.path(deep, "qmp.sock") != path)
        #expect(MachineSockets.path(deep + "x", "agent.sock") != path)
    }
}
