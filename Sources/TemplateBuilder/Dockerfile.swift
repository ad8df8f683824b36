import OmniRunError

/// A parsed Dockerfile: the subset OmniRun builds templates from. One stage: `FROM`
/// (a built-in template or `debian:bookworm`), then `RUN`, `COPY`, `ADD`, `ENV`,
/// `WORKDIR`, `USER` and `ARG`. Anything else is refused with its line number.
public struct Dockerfile: Sendable, Equatable {
    public var from: String
    public var instructions: [Instruction]
    /// `ARG`s declared before `FROM` (usable only in `FROM`, as Docker has it).
    public var globalArgs: [String: String?]

    public struct Instruction: Sendable, Equatable {
        public var line: Int
        public var kind: Kind
        /// The instruction as written (continuations joined), for logs and cache keys.
        public var text: String
    }

    public enum Kind: Sendable, Equatable {
        /// A shell command (`/bin/sh -c`) or an exec-form argument vector.
        case run(shell: String?, argv: [String]?)
        case copy(sources: [String], destination: String, chown: String?, chmod: String?, isAdd: Bool)
        case env([(String, String)])
        case workdir(String)
        case user(String)
        case arg(name: String, defaultValue: String?)

        public static func == (lhs: Kind, rhs: Kind) -> Bool {
            switch (lhs, rhs) {
            case (.run(let a, let b), .run(let c, let d)): a == c && b == d
            case (.copy(let a, let b, let c, let d, let e), .copy(let f, let g, let h, let i, let j)):
                a == f && b == g && c == h && d == i && e == j
            case (.env(let a), .env(let b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
            case (.workdir(let a), .workdir(let b)): a == b
            case (.user(let a), .user(let b)): a == b
            case (.arg(let a, let b), .arg(let c, let d)): a == c && b == d
            default: false
            }
        }
    }

    public static let supported = ["FROM", "RUN", "COPY", "ADD", "ENV", "WORKDIR", "USER", "ARG"]

    /// Parses Dockerfile text (at most 1 MiB, 1000 instructions).
    public static func parse(_ text: String) throws -> Dockerfile {
        guard text.utf8.count <= 1 << 20 else { throw bad("the Dockerfile is larger than 1 MiB") }
        var from: String?
        var globalArgs: [String: String?] = [:]
        var instructions: [Instruction] = []
        for (line, logical) in try logicalLines(text) {
            let (keyword, rest) = splitKeyword(logical)
            let upper = keyword.uppercased()
            let arguments = rest.trimmingCharacters(in: .whitespaces)
            if from == nil, upper != "FROM", upper != "ARG" {
                throw bad("line \(line): \(upper) before FROM (a Dockerfile starts with FROM, optionally after ARG)")
            }
            switch upper {
            case "FROM":
                guard from == nil else {
                    throw bad("line \(line): a second FROM: multi-stage builds are not supported")
                }
                let words = arguments.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                guard let image = words.first, words.count == 1 || (words.count == 3 && words[1].uppercased() == "AS"),
                    !image.hasPrefix("--")
                else {
                    throw bad("line \(line): FROM takes one image (a built-in template or debian:bookworm)")
                }
                from = try substitute(image, globalArgs.compactMapValues { $0 }, line: line)
            case "RUN":
                guard !arguments.isEmpty else { throw bad("line \(line): RUN needs a command") }
                if arguments.hasPrefix("--") {
                    throw bad("line \(line): RUN options (\(arguments.split(separator: " ")[0])) are not supported")
                }
                if let argv = try jsonArray(arguments, line: line) {
                    guard !argv.isEmpty else { throw bad("line \(line): RUN [] is empty") }
                    instructions.append(.init(line: line, kind: .run(shell: nil, argv: argv), text: logical))
                } else {
                    instructions.append(.init(line: line, kind: .run(shell: arguments, argv: nil), text: logical))
                }
            case "COPY", "ADD":
                var words = try jsonArray(arguments, line: line) ?? shellWords(arguments, line: line)
                var chown: String?
                var chmod: String?
                while let first = words.first, first.hasPrefix("--") {
                    words.removeFirst()
                    if first.hasPrefix("--chown=") {
                        chown = String(first.dropFirst(8))
                    } else if first.hasPrefix("--chmod=") {
                        chmod = String(first.dropFirst(8))
                        guard let mode = chmod, !mode.isEmpty, mode.count <= 4, mode.allSatisfy({ ("0"..."7").contains($0) }) else {
                            throw bad("line \(line): \(upper) --chmod takes an octal mode")
                        }
                    } else if first.hasPrefix("--from=") {
                        throw bad("line \(line): \(upper) --from needs multi-stage builds, which are not supported")
                    } else {
                        throw bad("line \(line): \(upper) option \(first) is not supported")
                    }
                }
                guard words.count >= 2, let destination = words.last else {
                    throw bad("line \(line): \(upper) needs at least one source and a destination")
                }
                let sources = Array(words.dropLast())
                for source in sources where source.contains("://") {
                    throw bad(
                        "line \(line): \(upper) from a URL needs the network, which template builds do not have yet")
                }
                instructions.append(
                    .init(
                        line: line,
                        kind: .copy(sources: sources, destination: destination, chown: chown, chmod: chmod, isAdd: upper == "ADD"),
                        text: logical))
            case "ENV":
                instructions.append(.init(line: line, kind: .env(try envPairs(arguments, line: line)), text: logical))
            case "WORKDIR":
                guard !arguments.isEmpty else { throw bad("line \(line): WORKDIR needs a path") }
                instructions.append(.init(line: line, kind: .workdir(try unquote(arguments, line: line)), text: logical))
            case "USER":
                guard !arguments.isEmpty, !arguments.contains(" ") else { throw bad("line \(line): USER takes one user name") }
                instructions.append(.init(line: line, kind: .user(arguments), text: logical))
            case "ARG":
                let words = try shellWords(arguments, line: line)
                guard words.count == 1, let word = words.first else { throw bad("line \(line): ARG takes one NAME[=default]") }
                let name: String
                let value: String?
                if let eq = word.firstIndex(of: "=") {
                    name = String(word[..<eq])
                    value = String(word[word.index(after: eq)...])
                } else {
                    name = word
                    value = nil
                }
                guard isName(name) else { throw bad("line \(line): invalid ARG name '\(name)'") }
                if from == nil {
                    globalArgs[name] = value
                } else {
                    instructions.append(.init(line: line, kind: .arg(name: name, defaultValue: value), text: logical))
                }
            default:
                let hint: String
                switch upper {
                case "CMD", "ENTRYPOINT": hint = " (use the template's start command instead)"
                case "HEALTHCHECK": hint = " (use the template's ready check instead)"
                case "EXPOSE": hint = " (ports are reached through the agent; nothing to declare)"
                default: hint = ""
                }
                throw bad(
                    "line \(line): unsupported instruction \(upper)\(hint); supported: \(supported.joined(separator: ", "))")
            }
            guard instructions.count <= 1000 else { throw bad("more than 1000 instructions") }
        }
        guard let from else { throw bad("the Dockerfile has no FROM") }
        return Dockerfile(from: from, instructions: instructions, globalArgs: globalArgs)
    }

    // MARK: lexing

    /// Joins continuation lines (a trailing `\`), drops comments and blank lines; each
    /// logical line with the number of its first physical line.
    static func logicalLines(_ text: String) throws -> [(Int, String)] {
        var result: [(Int, String)] = []
        var current = ""
        var start = 0
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = String(raw)
            if line.hasSuffix("\r") { line.removeLast() }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            // Comments inside a continued instruction are skipped too, as Docker does.
            if trimmed.hasPrefix("#") { continue }
            if current.isEmpty {
                if trimmed.isEmpty { continue }
                start = index + 1
            }
            if trimmed.hasSuffix("\\") {
                current += String(trimmed.dropLast()) + " "
                continue
            }
            current += trimmed
            result.append((start, current.trimmingCharacters(in: .whitespaces)))
            current = ""
        }
        if !current.trimmingCharacters(in: .whitespaces).isEmpty {
            result.append((start, current.trimmingCharacters(in: .whitespaces)))
        }
        return result
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

    private static func bad(_ message: String) -> OmniRunError {
        OmniRunError(.invalidArgument, "Dockerfile: \(message)")
    }
}

import Foundation
