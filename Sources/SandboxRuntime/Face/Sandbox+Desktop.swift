import AgentClient
import AgentProtocol
import OmniRunError

/// The desktop of a sandbox made from the `desktop` template (or one built on it).
extension Sandbox {
    /// The screen's raw pixels (fails with `.notFound` from an agent that predates it).
    public func desktopCapture() async throws -> DesktopCapture {
        try await agent.desktopCapture()
    }

    /// The screen as the guest's own PNG.
    public func desktopScreenshot() async throws -> [UInt8] {
        try await agent.desktopScreenshot()
    }

    public func desktopScreen() async throws -> DesktopScreen {
        try await agent.desktopScreen()
    }

    public func desktopMouse(_ request: DesktopMouseRequest) async throws {
        try await agent.desktopMouse(request)
    }

    public func desktopKeyboard(_ request: DesktopKeyboardRequest) async throws {
        try await agent.desktopKeyboard(request)
    }

    /// Whether the guest has a display (its X socket exists); other failures are thrown.
    public func hasDesktopDisplay() async throws -> Bool {
        do {
            _ = try await agent.stat(path: DesktopAPI.displaySocket)
            return true
        } catch let error as OmniRunError where error.code == .notFound {
            return false
        }
    }
}
