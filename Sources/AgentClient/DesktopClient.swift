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

    /// The screen's pixels as raw RGB, straight from the X server (`DesktopAPI.Path.capture`).
    public func desktopCapture(timeout: Duration = defaultTimeout) async throws -> DesktopCapture {
        try await exchange(
            .GET, DesktopAPI.Path.capture, query: [], timeout: timeout,
            writeBody: { writer in try await writer.write(.end(nil)) }
        ) { head, body in
            try await self.checkStatus(head, &body)
            guard let width = head.headers.first(name: DesktopAPI.widthHeader).flatMap({ Int($0) }),
                let height = head.headers.first(name: DesktopAPI.heightHeader).flatMap({ Int($0) }),
                width > 0, height > 0, width * height <= 40_000_000
            else { throw OmniRunError(.protocolViolation, "capture without a valid size from \(self.name)") }
            let rgb = try await body.collect(limit: width * height * 3, name: self.name)
            guard rgb.count == width * height * 3 else {
                throw OmniRunError(.protocolViolation, "capture of \(rgb.count) bytes for \(width)×\(height) from \(self.name)")
            }
            return DesktopCapture(width: width, height: height, rgb: rgb)
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

/// A raw screen capture: three bytes a pixel, rows top to bottom.
public struct DesktopCapture: Sendable {
    public var width: Int
    public var height: Int
    public var rgb: [UInt8]
}
