#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The desktop of a sandbox made from the `desktop` template (or a template built on it):
/// an X display whose screen the agent captures and whose mouse and keyboard it drives
/// through XTest (`xdotool`, always with an argument vector, never through a shell).
public enum DesktopAPI {
    /// The X display every desktop sandbox runs.
    public static let display = ":0"
    /// Its socket: a sandbox without it has no desktop.
    public static let displaySocket = "/tmp/.X11-unix/X0"
    /// noVNC (websockify serving its static files) and the VNC server it relays to.
    public static let novncPort = 6080
    public static let vncPort = 5900
    public static let websocketPath = "/websockify"
    /// Headers of a raw capture.
    public static let widthHeader = "x-omnirun-width"
    public static let heightHeader = "x-omnirun-height"
    /// Coordinates are screen pixels, 0 included.
    public static let maxCoordinate = 16384
    /// Text typed in one call, in characters.
    public static let maxTextLength = 20_000

    public enum Path {
        /// GET: a PNG of the whole screen (captured by `maim`; agents before `capture` existed).
        public static let screenshot = "/v1/desktop/screenshot"
        /// GET: the whole screen as raw RGB (3 bytes a pixel, rows top to bottom), its size in
        /// the `x-omnirun-width` / `x-omnirun-height` headers; read from the X server directly.
        public static let capture = "/v1/desktop/capture"
        /// GET: `DesktopScreen`.
        public static let screen = "/v1/desktop/screen"
        /// POST `DesktopMouseRequest`.
        public static let mouse = "/v1/desktop/mouse"
        /// POST `DesktopKeyboardRequest`.
        public static let keyboard = "/v1/desktop/keyboard"
    }
}

/// `GET /v1/desktop/screen` (and the API's `GET /desktop/screen`, same field names).
public struct DesktopScreen: Codable, Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var cursorX: Int
    public var cursorY: Int
    public init(width: Int, height: Int, cursorX: Int, cursorY: Int) {
        self.width = width
        self.height = height
        self.cursorX = cursorX
        self.cursorY = cursorY
    }
}

/// A mouse action, as the SDK sends it (wire protocol §13).
public struct DesktopMouseRequest: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable, CaseIterable {
        case click, doubleClick, rightClick, move, drag, scroll
    }
    public enum Direction: String, Codable, Sendable, CaseIterable {
        case up, down, left, right
    }

    public var action: Action
    public var x: Int?
    public var y: Int?
    public var endX: Int?
    public var endY: Int?
    public var direction: Direction?
    public var amount: Int?

    public init(
        action: Action, x: Int? = nil, y: Int? = nil, endX: Int? = nil, endY: Int? = nil, direction: Direction? = nil,
        amount: Int? = nil
    ) {
        self.action = action
        self.x = x
        self.y = y
        self.endX = endX
        self.endY = endY
        self.direction = direction
        self.amount = amount
    }

    enum CodingKeys: String, CodingKey {
        case action, x, y, endX, endY, direction, amount
    }

    /// Coordinates and `amount` are JSON numbers: a fraction (the public CLI sends
    /// `parseFloat` values) is rounded to the nearest pixel; one past `Int`'s range becomes
    /// its bound, which `validate` refuses with the field's name.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        action = try container.decode(Action.self, forKey: .action)
        x = try Self.number(container, .x)
        y = try Self.number(container, .y)
        endX = try Self.number(container, .endX)
        endY = try Self.number(container, .endY)
        direction = try container.decodeIfPresent(Direction.self, forKey: .direction)
        amount = try Self.number(container, .amount)
    }

    static func number(_ container: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Int? {
        if let whole = try? container.decodeIfPresent(Int.self, forKey: key) { return whole }
        guard let value = try container.decodeIfPresent(Double.self, forKey: key) else { return nil }
        guard value.isFinite else {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "\(key.stringValue) must be a number")
        }
        let rounded = value.rounded(.toNearestOrAwayFromZero)
        return Int(exactly: rounded) ?? (rounded < 0 ? Int.min : Int.max)
    }

    /// Checks what each action needs; the message says what is wrong.
    public func validate() throws(DesktopInputError) {
        for (name, value) in [("x", x), ("y", y), ("endX", endX), ("endY", endY)] {
            if let value, value < 0 || value > DesktopAPI.maxCoordinate {
                throw DesktopInputError("\(name) must be between 0 and \(DesktopAPI.maxCoordinate) (got \(value))")
            }
        }
        if (x == nil) != (y == nil) { throw DesktopInputError("x and y go together") }
        switch action {
        case .click, .doubleClick, .rightClick, .move:
            if x == nil { throw DesktopInputError("\(action.rawValue) needs x and y") }
        case .drag:
            if x == nil || endX == nil || endY == nil {
                throw DesktopInputError("drag needs x, y (the start) and endX, endY (the end)")
            }
        case .scroll:
            if direction == nil { throw DesktopInputError("scroll needs a direction: up, down, left or right") }
            if let amount, !(1...100).contains(amount) {
                throw DesktopInputError("amount must be between 1 and 100 (got \(amount))")
            }
        }
        if action != .drag, endX != nil || endY != nil {
            throw DesktopInputError("endX and endY belong to drag only")
        }
    }
}

/// A keyboard action: `type` a text, or `press` a key or combination (`"Enter"`, `"ctrl+c"`).
public struct DesktopKeyboardRequest: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable, CaseIterable {
        case type, press
    }

    public var action: Action
    public var text: String?
    public var key: String?

    public init(action: Action, text: String? = nil, key: String? = nil) {
        self.action = action
        self.text = text
        self.key = key
    }

    public func validate() throws(DesktopInputError) {
        switch action {
        case .type:
            guard let text else { throw DesktopInputError("type needs text") }
            if text.count > DesktopAPI.maxTextLength {
                throw DesktopInputError("text is limited to \(DesktopAPI.maxTextLength) characters per call")
            }
            if text.unicodeScalars.contains(where: { $0.value == 0 }) { throw DesktopInputError("text contains a NUL character") }
        case .press:
            guard let key else { throw DesktopInputError("press needs a key, e.g. \"Enter\" or \"ctrl+c\"") }
            _ = try DesktopKeys.keysyms(key)
        }
    }
}

public struct DesktopInputError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
