import Foundation
import OmniRunError

/// Lines, words, quotes, JSON arrays, here-documents and `$VARIABLE` substitution.
extension Dockerfile {
    // MARK: lexing

    /// One instruction: its text (continuation lines joined), the number of its first
    /// physical line, and the here-documents that follow it.
    struct LogicalLine {
        var line: Int
        var text: String
        var heredocs: [Heredoc] = []
    }

    /// Joins continuation lines (a trailing `\`), drops comments and blank lines, and
    /// collects the here-documents of `RUN`, `COPY` and `ADD` (their lines are kept as they
    /// are, comments included).
    static func logicalLines(_ text: String) throws -> [LogicalLine] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for index in lines.indices where lines[index].hasSuffix("\r") { lines[index].removeLast() }
        var result: [LogicalLine] = []
        var current = ""
        var start = 0
        var index = 0
        while index < lines.count {
            let line = lines[index]
            index += 1
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            // Comments inside a continued instruction are skipped too, as Docker does.
            if trimmed.hasPrefix("#") { continue }
            if current.isEmpty {
                if trimmed.isEmpty { continue }
                start = index
            }
            if trimmed.hasSuffix("\\") {
                current += String(trimmed.dropLast()) + " "
                continue
            }
            current += trimmed
            var logical = LogicalLine(line: start, text: current.trimmingCharacters(in: .whitespaces))
            current = ""
            let keyword = splitKeyword(logical.text).0.uppercased()
            if ["RUN", "COPY", "ADD"].contains(keyword) {
                for marker in heredocMarkers(logical.text) {
                    var body = ""
                    var raw = ""
                    var terminated = false
                    while index < lines.count {
                        let bodyLine = lines[index]
                        index += 1
                        raw += bodyLine + "\n"
                        let compared = marker.stripTabs ? String(bodyLine.drop(while: { $0 == "\t" })) : bodyLine
                        if compared == marker.name {
                            terminated = true
                            break
                        }
                        body += compared + "\n"
                        guard body.utf8.count <= 1 << 20 else { break }
                    }
                    guard terminated else {
                        throw bad("line \(start): the here-document \(marker.text) has no terminating \(marker.name) line")
                    }
                    logical.heredocs.append(Heredoc(name: marker.name, body: body, quoted: marker.quoted, raw: raw, marker: marker.text))
                }
            }
            result.append(logical)
        }
        if !current.trimmingCharacters(in: .whitespaces).isEmpty {
            result.append(LogicalLine(line: start, text: current.trimmingCharacters(in: .whitespaces)))
        }
        return result
    }

    /// The here-document markers of an instruction (`<<EOF`, `<<-EOF`, `<<'EOF'`,
    /// `<<"EOF"`), outside quotes; `<<<` (a here-string) is not one.
    static func heredocMarkers(_ text: String) -> [(text: String, name: String, stripTabs: Bool, quoted: Bool)] {
        var markers: [(text: String, name: String, stripTabs: Bool, quoted: Bool)] = []
        let characters = Array(text)
        var quote: Character?
        var index = 0
        while index < characters.count {
            let c = characters[index]
            if let q = quote {
                if c == q { quote = nil } else if c == "\\", q == "\"" { index += 1 }
                index += 1
                continue
            }
            if c == "'" || c == "\"" {
                quote = c
                index += 1
                continue
            }
            if c == "\\" {
                index += 2
                continue
            }
            guard c == "<", index + 1 < characters.count, characters[index + 1] == "<",
                index + 2 >= characters.count || characters[index + 2] != "<", index == 0 || characters[index - 1] != "<"
            else {
                index += 1
                continue
            }
            var cursor = index + 2
            var stripTabs = false
            if cursor < characters.count, characters[cursor] == "-" {
                stripTabs = true
                cursor += 1
            }
            var delimiter: Character?
            if cursor < characters.count, characters[cursor] == "'" || characters[cursor] == "\"" {
                delimiter = characters[cursor]
                cursor += 1
            }
            var name = ""
            while cursor < characters.count, characters[cursor].isASCII,
                characters[cursor].isLetter || characters[cursor].isNumber || characters[cursor] == "_"
            {
                name.append(characters[cursor])
                cursor += 1
            }
            if let delimiter {
                guard cursor < characters.count, characters[cursor] == delimiter else {
                    index = cursor
                    continue
                }
                cursor += 1
            }
            if !name.isEmpty, name.first?.isNumber == false {
                markers.append((String(characters[index..<cursor]), name, stripTabs, delimiter != nil))
            }
            index = cursor
        }
        return markers
    }

    static func splitKeyword(_ line: String) -> (String, String) {
        guard let space = line.firstIndex(where: { $0 == " " || $0 == "\t" }) else { return (line, "") }
        return (String(line[..<space]), String(line[line.index(after: space)...]))
    }

    /// The exec form `["a", "b"]`, or nil when the text is not a JSON array.
    static func jsonArray(_ text: String, line: Int) throws -> [String]? {
        guard text.hasPrefix("["), text.hasSuffix("]") else { return nil }
        guard let data = text.data(using: .utf8),
            let array = try? JSONSerialization.jsonObject(with: data) as? [Any]
        else { return nil }
        let strings = array.compactMap { $0 as? String }
        guard strings.count == array.count else { throw bad("line \(line): the JSON array must hold strings only") }
        return strings
    }

    /// Splits on blanks, honouring '…', "…" and backslash escapes (no expansion).
    static func shellWords(_ text: String, line: Int) throws -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var iterator = text.makeIterator()
        while let c = iterator.next() {
            if let q = quote {
                if c == q {
                    quote = nil
                } else if c == "\\", q == "\"", let next = iterator.next() {
                    if next != "\"" && next != "\\" { current.append("\\") }
                    current.append(next)
                } else {
                    current.append(c)
                }
                continue
            }
            switch c {
            case "'", "\"":
                quote = c
                inWord = true
            case "\\":
                if let next = iterator.next() { current.append(next) }
                inWord = true
            case " ", "\t":
                if inWord { words.append(current) }
                current = ""
                inWord = false
            default:
                current.append(c)
                inWord = true
            }
        }
        guard quote == nil else { throw bad("line \(line): unterminated quote") }
        if inWord { words.append(current) }
        return words
    }

    static func unquote(_ text: String, line: Int) throws -> String {
        let words = try shellWords(text, line: line)
        guard words.count == 1, let word = words.first else { throw bad("line \(line): expected one value, got '\(text)'") }
        return word
    }

    /// `ENV K=V K2="v 2"` or the legacy `ENV K the rest`.
    static func envPairs(_ text: String, line: Int) throws -> [(String, String)] {
        let words = try shellWords(text, line: line)
        guard let first = words.first else { throw bad("line \(line): ENV needs NAME=value") }
        if !first.contains("=") {
            guard isName(first), words.count >= 2 else { throw bad("line \(line): ENV needs NAME=value") }
            let value = String(text.trimmingCharacters(in: .whitespaces).dropFirst(first.count)).trimmingCharacters(in: .whitespaces)
            return [(first, try unquoteLegacy(value))]
        }
        return try words.map { word in
            guard let eq = word.firstIndex(of: "=") else { throw bad("line \(line): ENV expects NAME=value, got '\(word)'") }
            let name = String(word[..<eq])
            guard isName(name) else { throw bad("line \(line): invalid ENV name '\(name)'") }
            return (name, String(word[word.index(after: eq)...]))
        }
    }

    private static func unquoteLegacy(_ value: String) throws -> String {
        if value.count >= 2, let f = value.first, f == value.last, f == "\"" || f == "'" {
            return String(value.dropFirst().dropLast())
        }
        return value
    }

    static func isName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else {
            return false
        }
        return name.count <= 256
            && name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    /// `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alternative}`; `\$` is a literal `$`.
    public static func substitute(_ text: String, _ variables: [String: String], line: Int) throws -> String {
        var out = ""
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if c == "\\", text.index(after: index) < text.endIndex, text[text.index(after: index)] == "$" {
                out.append("$")
                index = text.index(index, offsetBy: 2)
                continue
            }
            guard c == "$" else {
                out.append(c)
                index = text.index(after: index)
                continue
            }
            var cursor = text.index(after: index)
            if cursor < text.endIndex, text[cursor] == "{" {
                guard let close = text[cursor...].firstIndex(of: "}") else { throw bad("line \(line): unterminated ${") }
                let inner = String(text[text.index(after: cursor)..<close])
                if let range = inner.range(of: ":-") {
                    let value = variables[String(inner[..<range.lowerBound])] ?? ""
                    out += value.isEmpty ? String(inner[range.upperBound...]) : value
                } else if let range = inner.range(of: ":+") {
                    let value = variables[String(inner[..<range.lowerBound])] ?? ""
                    out += value.isEmpty ? "" : String(inner[range.upperBound...])
                } else {
                    guard isName(inner) else { throw bad("line \(line): bad substitution ${\(inner)}") }
                    out += variables[inner] ?? ""
                }
                index = text.index(after: close)
                continue
            }
            var name = ""
            while cursor < text.endIndex, text[cursor] == "_" || text[cursor].isLetter && text[cursor].isASCII
                || (!name.isEmpty && text[cursor].isNumber && text[cursor].isASCII)
            {
                name.append(text[cursor])
                cursor = text.index(after: cursor)
            }
            if name.isEmpty {
                out.append("$")
                index = text.index(after: index)
            } else {
                out += variables[name] ?? ""
                index = cursor
            }
        }
        return out
    }
}
