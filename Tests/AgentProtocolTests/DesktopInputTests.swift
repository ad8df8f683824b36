import AgentProtocol
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
