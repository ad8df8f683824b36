/// Key names as agents send them (`"Enter"`, `"ctrl+c"`, `"cmd+shift+t"`, `"pageDown"`,
/// `"F5"`, `"a"`, `"é"`) turned into X keysym names for `xdotool key`. Names are matched
/// without regard to case, `_`, `-` or spaces (`PageDown`, `page_down` and `pagedown` are one
/// key). A single character is its own key (Unicode ones as `Uxxxx` keysyms, which xdotool
/// maps to a spare keycode). Anything else is refused, naming the key.
public enum DesktopKeys {
    /// Modifier names and their keysyms.
    static let modifiers: [String: String] = [
        "ctrl": "Control_L", "control": "Control_L", "ctl": "Control_L",
        "shift": "Shift_L",
        "alt": "Alt_L", "option": "Alt_L", "opt": "Alt_L", "altgr": "ISO_Level3_Shift",
        "cmd": "Super_L", "command": "Super_L", "win": "Super_L", "windows": "Super_L", "super": "Super_L",
        "meta": "Super_L", "os": "Super_L",
    ]

    /// Named keys (normalised names) and their keysyms.
    static let named: [String: String] = {
        var table: [String: String] = [
            "enter": "Return", "return": "Return", "tab": "Tab", "space": "space", "spacebar": "space",
            "backspace": "BackSpace", "delete": "Delete", "del": "Delete", "escape": "Escape", "esc": "Escape",
            "insert": "Insert", "ins": "Insert", "home": "Home", "end": "End",
            "pageup": "Prior", "pgup": "Prior", "prior": "Prior", "pagedown": "Next", "pgdn": "Next", "next": "Next",
            "up": "Up", "arrowup": "Up", "down": "Down", "arrowdown": "Down", "left": "Left", "arrowleft": "Left",
            "right": "Right", "arrowright": "Right",
            "capslock": "Caps_Lock", "numlock": "Num_Lock", "scrolllock": "Scroll_Lock",
            "printscreen": "Print", "print": "Print", "prtsc": "Print", "pause": "Pause", "break": "Break",
            "menu": "Menu", "contextmenu": "Menu", "apps": "Menu",
            "plus": "plus", "minus": "minus", "equal": "equal", "equals": "equal", "comma": "comma",
            "period": "period", "dot": "period", "slash": "slash", "backslash": "backslash",
            "semicolon": "semicolon", "apostrophe": "apostrophe", "quote": "apostrophe", "grave": "grave",
            "backquote": "grave", "backtick": "grave", "bracketleft": "bracketleft", "bracketright": "bracketright",
            "volumeup": "XF86AudioRaiseVolume", "volumedown": "XF86AudioLowerVolume", "volumemute": "XF86AudioMute",
            "mute": "XF86AudioMute",
        ]
        for n in 1...24 { table["f\(n)"] = "F\(n)" }
        for n in 0...9 { table["numpad\(n)"] = "KP_\(n)"; table["kp\(n)"] = "KP_\(n)" }
        table["numpadenter"] = "KP_Enter"
        table["kpenter"] = "KP_Enter"
        return table
    }()

    /// Characters whose keysym has a name (so xdotool finds them on the US keymap).
    static let punctuation: [Character: String] = [
        " ": "space", "!": "exclam", "\"": "quotedbl", "#": "numbersign", "$": "dollar", "%": "percent",
        "&": "ampersand", "'": "apostrophe", "(": "parenleft", ")": "parenright", "*": "asterisk", "+": "plus",
        ",": "comma", "-": "minus", ".": "period", "/": "slash", ":": "colon", ";": "semicolon", "<": "less",
        "=": "equal", ">": "greater", "?": "question", "@": "at", "[": "bracketleft", "\\": "backslash",
        "]": "bracketright", "^": "asciicircum", "_": "underscore", "`": "grave", "{": "braceleft", "|": "bar",
        "}": "braceright", "~": "asciitilde",
    ]

    static func normalise(_ name: String) -> String {
        String(name.lowercased().filter { $0 != "_" && $0 != "-" && $0 != " " })
    }

    /// The keysyms of a key or combination, modifiers first (`"ctrl+c"` → `["Control_L", "c"]`).
    public static func keysyms(_ combination: String) throws(DesktopInputError) -> [String] {
        let trimmed = combination.trimmingSpaces
        guard !trimmed.isEmpty else { throw DesktopInputError("the key is empty") }
        guard trimmed.count <= 100 else { throw DesktopInputError("the key name is too long") }
        var parts = trimmed.split(separator: "+", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
        // "+" itself, or a combination ending in it ("ctrl++"): the key is the plus sign.
        if trimmed == "+" {
            parts = ["+"]
        } else if trimmed.hasSuffix("++") {
            parts = Array(parts.dropLast(2)) + ["+"]
        }
        var result: [String] = []
        for (index, part) in parts.enumerated() {
            guard !part.isEmpty else { throw DesktopInputError("the key '\(combination)' has an empty part") }
            let isLast = index == parts.count - 1
            if !isLast {
                guard let modifier = modifiers[normalise(part)] else {
                    throw DesktopInputError("unknown modifier '\(part)' in '\(combination)' (use ctrl, shift, alt, cmd/win/super)")
                }
                result.append(modifier)
            } else if parts.count > 1, part.count == 1, let c = part.first, c.isASCII, c.isLetter {
                // "ctrl+C" means ctrl+c, not ctrl+shift+c
                result.append(part.lowercased())
            } else {
                result.append(try keysym(part, in: combination))
            }
        }
        return result
    }

    static func keysym(_ part: String, in combination: String) throws(DesktopInputError) -> String {
        if part.count == 1, let character = part.first {
            if let name = punctuation[character] { return name }
            let scalars = character.unicodeScalars
            if scalars.count == 1, let scalar = scalars.first {
                if scalar.isASCII, scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) { return String(scalar) }
                if scalar.value >= 0xA0 { return "U" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 4) }
            }
            throw DesktopInputError("unknown key '\(part)' in '\(combination)'")
        }
        let name = normalise(part)
        if let keysym = named[name] ?? modifiers[name] { return keysym }
        throw DesktopInputError(
            "unknown key '\(part)'\(part == combination ? "" : " in '\(combination)'") "
                + "(known: letters, digits, Enter, Tab, Escape, Backspace, Delete, arrows, Home, End, "
                + "PageUp, PageDown, F1-F24, ctrl/shift/alt/cmd combinations)")
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return String(s)
    }

    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
