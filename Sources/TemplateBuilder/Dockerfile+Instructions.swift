import Foundation

/// The instructions whose arguments take more than a word or two: `RUN` (flags,
/// here-documents), `COPY`/`ADD` (flags, `--from`, here-documents, URLs), `CMD`,
/// `ENTRYPOINT` and `HEALTHCHECK`.
extension Dockerfile {
    /// Runs a here-document that starts with `#!` as a program of its own (as BuildKit does).
    static let heredocScriptRunner =
        #"t=$(mktemp /tmp/.omnirun-heredoc.XXXXXX) && printf '%s' "$1" > "$t" && chmod 0700 "$t" && "$t"; status=$?; rm -f "$t"; exit $status"#

    static func runInstruction(_ arguments: String, logical: LogicalLine) throws -> Instruction {
        let line = logical.line
        var rest = arguments
        var withoutNetwork = false
        while rest.hasPrefix("--") {
            let (flag, remainder) = splitKeyword(rest)
            rest = remainder.trimmingCharacters(in: .whitespaces)
            switch flag {
            case "--network=none":
                withoutNetwork = true
            case "--network=default":
                withoutNetwork = false
            case _ where flag.hasPrefix("--mount"):
                if flag.contains("type=cache") {
                    throw bad(
                        "line \(line): RUN --mount=type=cache is not supported: each step runs in a build machine of its own and its result is kept as a cached layer (an unchanged step does not run again); drop the --mount option"
                    )
                }
                throw bad("line \(line): RUN \(flag) is not supported (no secret, SSH or bind mounts in template builds)")
            case _ where flag.hasPrefix("--network="):
                throw bad("line \(line): RUN \(flag) is not supported (--network=default or --network=none)")
            default:
                throw bad("line \(line): RUN option \(flag) is not supported (only --network=default|none)")
            }
        }
        guard !rest.isEmpty else { throw bad("line \(line): RUN needs a command") }
        let kind: Kind
        if let heredoc = logical.heredocs.first {
            if logical.heredocs.count == 1, rest == heredoc.marker {
                // The here-document is the script: run by the shell, or as a program of its own.
                if heredoc.body.hasPrefix("#!") {
                    kind = .run(shell: nil, argv: ["/bin/sh", "-c", heredocScriptRunner, "heredoc", heredoc.body])
                } else {
                    kind = .run(shell: heredoc.body, argv: nil)
                }
            } else {
                // A command reading here-documents: the shell gets them as written.
                kind = .run(shell: rest + "\n" + logical.heredocs.map(\.raw).joined(), argv: nil)
            }
        } else if let argv = try jsonArray(rest, line: line) {
            guard !argv.isEmpty else { throw bad("line \(line): RUN [] is empty") }
            kind = .run(shell: nil, argv: argv)
        } else {
            kind = .run(shell: rest, argv: nil)
        }
        var instruction = Instruction(line: line, kind: kind, text: logical.text)
        instruction.withoutNetwork = withoutNetwork
        return instruction
    }

    static func copyInstruction(_ keyword: String, _ arguments: String, logical: LogicalLine) throws -> Kind {
        let line = logical.line
        var words = try jsonArray(arguments, line: line) ?? shellWords(arguments, line: line)
        var chown: String?
        var chmod: String?
        var from: String?
        while let first = words.first, first.hasPrefix("--") {
            words.removeFirst()
            if first.hasPrefix("--chown=") {
                chown = String(first.dropFirst(8))
            } else if first.hasPrefix("--chmod=") {
                chmod = String(first.dropFirst(8))
                guard let mode = chmod, !mode.isEmpty, mode.count <= 4, mode.allSatisfy({ ("0"..."7").contains($0) }) else {
                    throw bad("line \(line): \(keyword) --chmod takes an octal mode")
                }
            } else if first.hasPrefix("--from="), keyword == "COPY" {
                from = String(first.dropFirst(7))
                guard let name = from, !name.isEmpty else { throw bad("line \(line): COPY --from needs a built-in template") }
            } else if first == "--link" || first == "--link=true" {
                // Layers are kept apart anyway.
            } else {
                throw bad("line \(line): \(keyword) option \(first) is not supported")
            }
        }
        guard words.count >= 2, let destination = words.last else {
            throw bad("line \(line): \(keyword) needs at least one source and a destination")
        }
        let sources = Array(words.dropLast())
        if !logical.heredocs.isEmpty {
            guard from == nil else { throw bad("line \(line): COPY --from does not take here-documents") }
            // The words lost their quotes (`<<'EOF'` is the word `<<EOF`).
            let markers = Set(logical.heredocs.map { $0.marker.filter { $0 != "'" && $0 != "\"" } })
            guard sources.allSatisfy({ markers.contains($0) }), sources.count == logical.heredocs.count else {
                throw bad("line \(line): \(keyword) takes either here-documents or paths as its sources, not both")
            }
            return .copyInline(files: logical.heredocs, destination: destination, chown: chown, chmod: chmod)
        }
        if let from {
            return .copyFrom(template: from, sources: sources, destination: destination, chown: chown, chmod: chmod)
        }
        let urls = sources.filter { $0.contains("://") }
        if !urls.isEmpty {
            guard keyword == "ADD" else {
                throw bad("line \(line): COPY takes no URL (ADD <url> <destination> downloads one)")
            }
            guard sources.count == 1, let url = urls.first, url.hasPrefix("https://") || url.hasPrefix("http://") else {
                throw bad("line \(line): ADD downloads one http(s) URL at a time")
            }
            return .copy(sources: [url], destination: destination, chown: chown, chmod: chmod, isAdd: true)
        }
        return .copy(sources: sources, destination: destination, chown: chown, chmod: chmod, isAdd: keyword == "ADD")
    }

    /// `CMD`/`ENTRYPOINT`: the exec form (a JSON array) or the shell form.
    static func command(_ arguments: String, keyword: String, line: Int) throws -> Command {
        if let argv = try jsonArray(arguments, line: line) {
            guard !argv.isEmpty else { throw bad("line \(line): \(keyword) [] is empty") }
            return .exec(argv)
        }
        guard !arguments.isEmpty else { throw bad("line \(line): \(keyword) needs a command") }
        return .shell(arguments)
    }

    /// `HEALTHCHECK [--interval=… --timeout=… --start-period=… --start-interval=… --retries=…] CMD …`
    /// or `HEALTHCHECK NONE`. The options are checked and otherwise left to the template's
    /// ready timeout: the check is retried until it passes once.
    static func healthcheck(_ arguments: String, line: Int) throws -> Command? {
        var rest = arguments
        var options = 0
        while rest.hasPrefix("--") {
            let (option, remainder) = splitKeyword(rest)
            rest = remainder.trimmingCharacters(in: .whitespaces)
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[1].isEmpty,
                ["--interval", "--timeout", "--start-period", "--start-interval", "--retries"].contains(parts[0])
            else {
                throw bad("line \(line): HEALTHCHECK option \(option) is not supported")
            }
            if parts[0] == "--retries" {
                guard Int(parts[1]).map({ $0 >= 0 }) == true else { throw bad("line \(line): HEALTHCHECK --retries takes a number") }
            } else {
                guard parts[1].range(of: #"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"#, options: .regularExpression) != nil else {
                    throw bad("line \(line): HEALTHCHECK \(parts[0]) takes a duration such as 30s")
                }
            }
            options += 1
        }
        let (word, command) = splitKeyword(rest)
        switch word.uppercased() {
        case "NONE" where command.trimmingCharacters(in: .whitespaces).isEmpty && options == 0:
            return nil
        case "CMD":
            return try self.command(command.trimmingCharacters(in: .whitespaces), keyword: "HEALTHCHECK CMD", line: line)
        default:
            throw bad("line \(line): HEALTHCHECK takes [OPTIONS] CMD command, or NONE")
        }
    }
}
