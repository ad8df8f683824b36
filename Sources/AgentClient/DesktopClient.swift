import AgentProtocol
import NIOCore
import OmniRunError

/// The desktop of a sandbox (`DesktopAPI`): screenshots, the screen, mouse and keyboard.
extension GuestAgentClient {
    /// A PNG of the whole screen (at most `limit` bytes).
    public func desktopScreenshot(limit: Int = 32 << 20, timeout: Duration = defaultTimeout) async throws -> [UInt8] {
        try await exchange(
            .GET, DesktopAPI.Path.screenshot, query: [], timeout: timeout,
            writeBody: { writer in try await writer.write(.end(nil)) }
        ) { head, body in
            try await self.checkStatus(head, &body)
            return try await body.collect(limit: limit, name: self.name)
        }
    }

    public func desktopScreen() async throws -> DesktopScreen {
        try await json(.GET, DesktopAPI.Path.screen)
    }

    public func desktopMouse(_ request: DesktopMouseRequest) async throws {
        let _: EmptyReply = try await json(.POST, DesktopAPI.Path.mouse, body: request)
    }

    /// Typing waits for the whole text (xdotool types ~12 ms a character).
    public func desktopKeyboard(_ request: DesktopKeyboardRequest) async throws {
        let seconds = 30 + (request.text?.count ?? 0) / 20
        let _: EmptyReply = try await json(.POST, DesktopAPI.Path.keyboard, body: request, timeout: .seconds(seconds))
    }
}
