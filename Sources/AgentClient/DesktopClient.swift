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
            let width = head.headers.first(name: DesktopAPI.widthHeader)
            let height = head.headers.first(name: DesktopAPI.heightHeader)
            guard let bytes = DesktopCapture.byteCount(width: width, height: height) else {
                throw self.violation(
                    "sent a capture of \(String((width ?? "?").prefix(24)))×\(String((height ?? "?").prefix(24))) pixels "
                        + "(each side 1…\(DesktopCapture.maxSide), at most \(DesktopCapture.maxPixels) pixels)")
            }
            let rgb = try await body.collect(limit: bytes.count, name: self.name)
            guard rgb.count == bytes.count else {
                throw self.violation("sent a capture of \(rgb.count) bytes for \(bytes.width)×\(bytes.height) pixels")
            }
            return DesktopCapture(width: bytes.width, height: bytes.height, rgb: rgb)
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

    /// X11 screens are at most 32767 pixels a side; an 8K screen has 33 million pixels.
    public static let maxSide = 32767
    public static let maxPixels = 40_000_000

    /// The size of a capture whose headers say `width` × `height`, or nil when either is
    /// not a number in 1…`maxSide` or the area is past `maxPixels`. Nothing is multiplied
    /// before both sides are bounded.
    public static func byteCount(width: String?, height: String?) -> (width: Int, height: Int, count: Int)? {
        guard let width = width.flatMap({ Int($0) }), let height = height.flatMap({ Int($0) }),
            (1...maxSide).contains(width), (1...maxSide).contains(height)
        else { return nil }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= maxPixels else { return nil }
        return (width, height, pixels * 3)
    }
}
