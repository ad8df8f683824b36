import Foundation
import OmniRunError

/// A parsed Dockerfile: the subset OmniRun builds templates from. One stage: `FROM`
/// (a built-in template or `debian:bookworm`), then `RUN` (shell or exec form, heredocs,
/// `--network`), `COPY`/`ADD` (from the context, `--from` a built-in template, heredocs),
/// `ENV`, `WORKDIR`, `USER`, `ARG`, `SHELL`, and what a sandbox starts with: `EXPOSE`
/// (the template's ports), `CMD`/`ENTRYPOINT` (its start command), `HEALTHCHECK` (its ready
/// check). `LABEL`, `MAINTAINER`, `STOPSIGNAL` and `VOLUME` are accepted and change nothing.
/// Anything else is refused with its line number.
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
        /// `RUN --network=none`: the step runs without a network card.
        public var withoutNetwork = false
    }

    /// A here-document (`<<EOF` … `EOF`) attached to a `RUN`, `COPY` or `ADD`.
    public struct Heredoc: Sendable, Equatable {
        public var name: String
        /// The lines between the marker and the terminator, each ending in a newline
        /// (leading tabs removed for `<<-`).
        public var body: String
        /// `<<'EOF'` or `<<"EOF"`: no variable expansion.
        public var quoted: Bool
        /// The lines as written, with the terminator (handed to a shell as they are).
        public var raw: String
        /// The marker as written (`<<EOF`, `<<-'EOF'`).
        public var marker: String
    }

    /// A command in shell form (run by the `SHELL`, `/bin/sh -c` by default) or exec form.
    public enum Command: Sendable, Equatable {
        case shell(String)
        case exec([String])
    }

    public enum Kind: Sendable, Equatable {
        /// A shell command (`/bin/sh -c`, or the `SHELL`) or an exec-form argument vector.
        case run(shell: String?, argv: [String]?)
        case copy(sources: [String], destination: String, chown: String?, chmod: String?, isAdd: Bool)
        /// `COPY --from=<built-in template>`: files out of that template's image.
        case copyFrom(template: String, sources: [String], destination: String, chown: String?, chmod: String?)
        /// `COPY <<EOF /path`: files written from here-documents.
        case copyInline(files: [Heredoc], destination: String, chown: String?, chmod: String?)
        case env([(String, String)])
        case workdir(String)
        case user(String)
        case arg(name: String, defaultValue: String?)
        /// The shell of later shell-form instructions (`SHELL ["/bin/bash", "-c"]`).
        case shell([String])
        /// Ports (`8000`, `8000/tcp`, `8000-8002`, `$PORT`), resolved when the plan is made.
        case expose([String])
        case cmd(Command)
        case entrypoint(Command)
        /// The ready check; nil for `HEALTHCHECK NONE`.
        case healthcheck(Command?)
        /// Accepted and without effect on the template (`LABEL`, `MAINTAINER`, …).
        case ignored(String)

        public static func == (lhs: Kind, rhs: Kind) -> Bool {
            switch (lhs, rhs) {
            case (.run(let a, let b), .run(let c, let d)): a == c && b == d
            case (.copy(let a, let b, let c, let d, let e), .copy(let f, let g, let h, let i, let j)):
                a == f && b == g && c == h && d == i && e == j
            case (.copyFrom(let a, let b, let c, let d, let e), .copyFrom(let f, let g, let h, let i, let j)):
                a == f && b == g && c == h && d == i && e == j
            case (.copyInline(let a, let b, let c, let d), .copyInline(let e, let f, let g, let h)):
                a == e && b == f && c == g && d == h
            case (.env(let a), .env(let b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
            case (.workdir(let a), .workdir(let b)): a == b
            case (.user(let a), .user(let b)): a == b
            case (.arg(let a, let b), .arg(let c, let d)): a == c && b == d
            case (.shell(let a), .shell(let b)): a == b
            case (.expose(let a), .expose(let b)): a == b
            case (.cmd(let a), .cmd(let b)): a == b
            case (.entrypoint(let a), .entrypoint(let b)): a == b
            case (.healthcheck(let a), .healthcheck(let b)): a == b
            case (.ignored(let a), .ignored(let b)): a == b
            default: false
            }
        }
    }

    public static let supported = [
        "FROM", "RUN", "COPY", "ADD", "ENV", "WORKDIR", "USER", "ARG", "SHELL", "EXPOSE", "CMD", "ENTRYPOINT", "HEALTHCHECK",
        "LABEL", "MAINTAINER", "STOPSIGNAL", "VOLUME",
    ]

    /// Parses Dockerfile text (at most 1 MiB, 1000 instructions).
    public static func parse(_ text: String) throws -> Dockerfile {
        guard text.utf8.count <= 1 << 20 else { throw bad("the Dockerfile is larger than 1 MiB") }
        var from: String?
        var globalArgs: [String: String?] = [:]
        var instructions: [Instruction] = []
        for logical in try logicalLines(text) {
            let line = logical.line
            let (keyword, rest) = splitKeyword(logical.text)
            let upper = keyword.uppercased()
            let arguments = rest.trimmingCharacters(in: .whitespaces)
            if from == nil, upper != "FROM", upper != "ARG" {
                throw bad("line \(line): \(upper) before FROM (a Dockerfile starts with FROM, optionally after ARG)")
            }
            func add(_ kind: Kind) { instructions.append(Instruction(line: line, kind: kind, text: logical.text)) }
            switch upper {
            case "FROM":
                guard from == nil else {
                    throw bad(
                        "line \(line): a second FROM: multi-stage builds are not supported (COPY --from=<built-in template> copies files out of a built-in template)"
                    )
                }
                let words = arguments.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                guard let image = words.first, words.count == 1 || (words.count == 3 && words[1].uppercased() == "AS"),
                    !image.hasPrefix("--")
                else {
                    throw bad("line \(line): FROM takes one image (a built-in template or debian:bookworm)")
                }
                from = try substitute(image, globalArgs.compactMapValues { $0 }, line: line)
            case "RUN":
                instructions.append(try runInstruction(arguments, logical: logical))
            case "COPY", "ADD":
                add(try copyInstruction(upper, arguments, logical: logical))
            case "ENV":
                add(.env(try envPairs(arguments, line: line)))
            case "WORKDIR":
                guard !arguments.isEmpty else { throw bad("line \(line): WORKDIR needs a path") }
                add(.workdir(try unquote(arguments, line: line)))
            case "USER":
                guard !arguments.isEmpty, !arguments.contains(" ") else { throw bad("line \(line): USER takes one user name") }
                add(.user(arguments))
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
                    add(.arg(name: name, defaultValue: value))
                }
            case "SHELL":
                guard let argv = try jsonArray(arguments, line: line), !argv.isEmpty, argv.allSatisfy({ !$0.isEmpty }) else {
                    throw bad("line \(line): SHELL takes the JSON form, e.g. SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]")
                }
                add(.shell(argv))
            case "EXPOSE":
                let ports = try shellWords(arguments, line: line)
                guard !ports.isEmpty else { throw bad("line \(line): EXPOSE needs a port") }
                add(.expose(ports))
            case "CMD":
                add(.cmd(try command(arguments, keyword: upper, line: line)))
            case "ENTRYPOINT":
                add(.entrypoint(try command(arguments, keyword: upper, line: line)))
            case "HEALTHCHECK":
                add(.healthcheck(try healthcheck(arguments, line: line)))
            case "LABEL", "MAINTAINER", "STOPSIGNAL", "VOLUME":
                add(.ignored(upper))
            default:
                let hint: String
                switch upper {
                case "ONBUILD": hint = " (templates are not built upon by other Dockerfiles)"
                default: hint = ""
                }
                throw bad(
                    "line \(line): unsupported instruction \(upper)\(hint); supported: \(supported.joined(separator: ", "))")
            }
            guard instructions.count <= 1000 else { throw bad("line \(line): more than 1000 instructions") }
        }
        guard let from else { throw bad("the Dockerfile has no FROM") }
        return Dockerfile(from: from, instructions: instructions, globalArgs: globalArgs)
    }

    static func bad(_ message: String) -> OmniRunError {
        OmniRunError(.invalidArgument, "Dockerfile: \(message)")
    }
}
