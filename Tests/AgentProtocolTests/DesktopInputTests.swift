import AgentProtocol
import Foundation
import Testing

/// Key names as agents send them, and the checks on mouse and keyboard requests.
@Suite("Desktop input")
struct DesktopInputTests {
    @Test(arguments: [
        ("Enter", ["Return"]), ("Return", ["Return"]), ("enter", ["Return"]), ("ctrl+c", ["Control_L", "c"]),
        ("Ctrl+C", ["Control_L", "c"]), ("control+shift+t", ["Control_L", "Shift_L", "t"]),
        ("cmd+a", ["Super_L", "a"]), ("win", ["Super_L"]), ("super+e", ["Super_L", "e"]), ("alt+F4", ["Alt_L", "F4"]),
        ("pageDown", ["Next"]), ("PageDown", ["Next"]), ("page_up", ["Prior"]), ("F1", ["F1"]), ("f12", ["F12"]),
        ("F24", ["F24"]), ("Escape", ["Escape"]), ("esc", ["Escape"]), ("BackSpace", ["BackSpace"]), ("Tab", ["Tab"]),
        ("ArrowLeft", ["Left"]), ("up", ["Up"]), ("space", ["space"]), ("Delete", ["Delete"]), ("home", ["Home"]),
        ("a", ["a"]), ("A", ["A"]), ("7", ["7"]), ("-", ["minus"]), ("+", ["plus"]), ("ctrl++", ["Control_L", "plus"]),
        ("ctrl+-", ["Control_L", "minus"]), ("é", ["U00E9"]), ("€", ["U20AC"]), (" ctrl + c ", ["Control_L", "c"]),
        ("shift", ["Shift_L"]),
    ])
    func keyNames(name: String, keysyms: [String]) throws {
        #expect(try DesktopKeys.keysyms(name) == keysyms)
    }

    @Test(arguments: ["Foo", "ctrl+Foo", "hyper+c", "", "ctrl+", "F25", "ctrl++c", "\u{7}"])
    func unknownKeysAreRefusedByName(name: String) {
        #expect(throws: DesktopInputError.self) { try DesktopKeys.keysyms(name) }
    }

    @Test func theMessageNamesTheKey() {
        do {
            _ = try DesktopKeys.keysyms("ctrl+Frobnicate")
            Issue.record("accepted an unknown key")
        } catch {
            #expect(error.message.contains("'Frobnicate'"), "\(error.message)")
        }
    }

    @Test func mouseRequestsNeedWhatTheirActionUses() throws {
        try DesktopMouseRequest(action: .click, x: 0, y: 0).validate()
        try DesktopMouseRequest(action: .drag, x: 1, y: 2, endX: 3, endY: 4).validate()
        try DesktopMouseRequest(action: .scroll, direction: .down).validate()
        try DesktopMouseRequest(action: .scroll, x: 5, y: 5, direction: .up, amount: 3).validate()
        let bad: [DesktopMouseRequest] = [
            .init(action: .click), .init(action: .click, x: 1), .init(action: .click, x: -1, y: 0),
            .init(action: .move, x: 0, y: 99_999), .init(action: .drag, x: 1, y: 1),
            .init(action: .scroll), .init(action: .scroll, direction: .left, amount: 0),
            .init(action: .click, x: 1, y: 1, endX: 2, endY: 2),
        ]
        for request in bad {
            #expect(throws: DesktopInputError.self, "\(request)") { try request.validate() }
        }
    }

    /// The public CLI's `desktop click|move <x> <y>` sends `Number.parseFloat` values
    /// (a14a-org/omnirun-cli src/cli.ts, `desktop click`/`move`): fractions are rounded to
    /// the nearest pixel, whole numbers pass as they are, and a number past `Int`'s range
    /// reaches `validate` as the bound, which names the field.
    @Test func fractionalCoordinatesAreRounded() throws {
        func decode(_ json: String) throws -> DesktopMouseRequest {
            try JSONDecoder().decode(DesktopMouseRequest.self, from: Data(json.utf8))
        }
        #expect(try decode(#"{"action":"move","x":100.6,"y":200.4}"#) == DesktopMouseRequest(action: .move, x: 101, y: 200))
        #expect(try decode(#"{"action":"click","x":12,"y":7.5}"#) == DesktopMouseRequest(action: .click, x: 12, y: 8))
        #expect(try decode(#"{"action":"move","x":0.49,"y":1e2}"#) == DesktopMouseRequest(action: .move, x: 0, y: 100))
        let drag = try decode(#"{"action":"drag","x":1.2,"y":2.7,"endX":30.5,"endY":40.49}"#)
        #expect(drag == DesktopMouseRequest(action: .drag, x: 1, y: 3, endX: 31, endY: 40))
        #expect(try decode(#"{"action":"scroll","direction":"down","amount":2.6}"#).amount == 3)
        #expect(try decode(#"{"action":"scroll","direction":"up","x":null,"y":null}"#) == DesktopMouseRequest(action: .scroll, direction: .up))
        // Out of range stays refused, with the field's name.
        let huge = try decode(#"{"action":"move","x":1e30,"y":5}"#)
        #expect(huge.x == Int.max)
        #expect(throws: DesktopInputError.self) { try huge.validate() }
        do {
            try decode(#"{"action":"move","x":-0.6,"y":5}"#).validate()
            Issue.record("a negative coordinate passed")
        } catch let error as DesktopInputError {
            #expect(error.message.contains("x must be between 0"), "\(error.message)")
        }
        // Not numbers at all: still a decoding error.
        #expect(throws: DecodingError.self) { try decode(#"{"action":"move","x":"5","y":5}"#) }
        // What the server sends the guest is unchanged: whole numbers.
        let encoded = String(decoding: try JSONEncoder().encode(DesktopMouseRequest(action: .move, x: 101, y: 200)), as: UTF8.self)
        #expect(encoded.contains(#""x":101"#) && encoded.contains(#""y":200"#), "\(encoded)")
    }

    @Test func keyboardRequestsNeedTheirText() throws {
        try DesktopKeyboardRequest(action: .type, text: "héllo -\"x\" — “quotes” 日本").validate()
        try DesktopKeyboardRequest(action: .press, key: "ctrl+c").validate()
        #expect(throws: DesktopInputError.self) { try DesktopKeyboardRequest(action: .type).validate() }
        #expect(throws: DesktopInputError.self) { try DesktopKeyboardRequest(action: .press).validate() }
        #expect(throws: DesktopInputError.self) { try DesktopKeyboardRequest(action: .press, key: "nope").validate() }
        let long = String(repeating: "x", count: DesktopAPI.maxTextLength + 1)
        #expect(throws: DesktopInputError.self) { try DesktopKeyboardRequest(action: .type, text: long).validate() }
    }
}
