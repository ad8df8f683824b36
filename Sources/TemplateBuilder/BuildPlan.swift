import Crypto
import Foundation
import OmniRunError

/// A Dockerfile turned into what a build does: the steps that change the disk (each a
/// cached layer keyed by its content and its parent) and the configuration the
/// instructions leave behind (ENV, WORKDIR, USER, ports, start command, ready check).
struct BuildPlan: Sendable {
    /// A step that runs in a build machine and leaves a layer.
    struct Step: Sendable {
        enum Action: Sendable {
            case run(shell: String?, argv: [String]?)
            case copy(sources: [String], destination: String, chown: String?, chmod: String?, extract: Bool)
            /// Files out of a built-in template's image (its root file system at `image`).
            case copyFrom(template: String, image: String, sources: [String], destination: String, chown: String?, chmod: String?)
            /// Files written from here-documents (`COPY <<EOF /path`).
            case inline(files: [(name: String, content: String)], destination: String, chown: String?, chmod: String?)
            /// `ADD <url> <destination>`: downloaded inside the build machine.
            case download(url: String, destination: String, chown: String?, chmod: String?)
            /// Grows the root file system to the disk size (the first layer, when asked).
            case growFileSystem
        }
        var action: Action
        /// Dockerfile line (0 for steps OmniRun adds).
        var line: Int
        var title: String
        /// Environment, working directory and user in effect for the step.
        var env: [String: String]
        var workdir: String
        var user: String
        /// The `SHELL` of a shell-form RUN (nil: `/bin/sh -c`).
        var shell: [String]? = nil
        /// Whether the step's machine gets a network card (`RUN --network=none`: no).
        var network = true
        /// Layer key: its parent's key and everything the step depends on.
        var key: String

        /// The process a RUN step starts.
        var runArgv: [String]? {
            guard case .run(let text, let argv) = action else { return nil }
            return argv ?? (shell ?? Dockerfile.defaultShell) + [text ?? ""]
        }
    }

    var steps: [Step]
    /// Where the instructions left off: the template's own configuration.
    var env: [String: String]
    var workdir: String
    var user: String?
    /// `EXPOSE`d TCP ports.
    var ports: [Int]
    /// `ENTRYPOINT`/`CMD` as one shell command (the start command when the settings give none).
    var startCommand: String?
    /// `HEALTHCHECK CMD` as one shell command (the ready check when the settings give none).
    var readyCommand: String?
    /// Key of the last layer (the base's when there are no steps).
    var finalKey: String
    /// Instructions that only change the configuration, for the log.
    var configurationLines: [(line: Int, title: String)]

    /// - Parameters:
    ///   - scope: isolates caches (the account): layers are never shared between accounts.
    ///   - baseKey: the base image's key.
    ///   - contextHash: hash of the build context, for COPY and ADD.
    ///   - salt: a build's own value, so that none of its layers is found in the cache (`--no-cache`).
    ///   - template: a built-in template's root file system and key, for `COPY --from`.
    static func make(
        _ dockerfile: Dockerfile, buildArgs: [String: String], scope: String, baseKey: String, growTo diskMB: Int?,
        contextHash: String?, salt: String? = nil, template: (String) throws -> (rootfs: String, key: String) = { _ in ("", "") }
    ) throws -> BuildPlan {
        var key = hash(["layer-v1", scope, baseKey])
        if let salt { key = hash([key, "no-cache", salt]) }
        var steps: [Step] = []
        var env: [String: String] = [:]
        var args: [String: String] = [:]
        var workdir = "/"
        var user: String?
        var shell: [String]?
        var ports: [Int] = []
        var entrypoint: (argv: [String], isShell: Bool)?
        var cmd: [String]?
        var ready: String?
        var configuration: [(Int, String)] = []
        if let diskMB {
            key = hash([key, "grow", "\(diskMB)"])
            steps.append(
                Step(
                    action: .growFileSystem, line: 0, title: "grow the root file system to \(diskMB) MiB", env: [:],
                    workdir: "/", user: "root", key: key))
        }
        func render(_ command: Dockerfile.Command) -> [String] {
            switch command {
            case .shell(let text): (shell ?? Dockerfile.defaultShell) + [text]
            case .exec(let argv): argv
            }
        }
        for instruction in dockerfile.instructions {
            // Like the base image's configuration in Docker: PATH is known before any ENV sets it.
            let variables = ["PATH": Dockerfile.defaultPath].merging(args.merging(env) { _, e in e }) { _, given in given }
            let line = instruction.line
            func substitute(_ text: String) throws -> String { try Dockerfile.substitute(text, variables, line: line) }
            func target(_ destination: String) throws -> String {
                var target = try substitute(destination)
                let isDirectory = target.hasSuffix("/") || target == "." || target.hasSuffix("/.")
                if !target.hasPrefix("/") { target = (workdir as NSString).appendingPathComponent(target) }
                target = (target as NSString).standardizingPath
                if isDirectory && target != "/" { target += "/" }
                return target
            }
            func addStep(_ action: Step.Action, keyParts: [String], user stepUser: String = "root", stepEnv: [String: String] = [:]) {
                key = hash([key] + keyParts)
                steps.append(
                    Step(
                        action: action, line: line, title: instruction.text, env: stepEnv, workdir: workdir, user: stepUser,
                        shell: shell, network: !instruction.withoutNetwork, key: key))
            }
            switch instruction.kind {
            case .arg(let name, let defaultValue):
                let value = buildArgs[name] ?? defaultValue
                if let value { args[name] = value } else { args[name] = nil }
                key = hash([key, "ARG", name, value ?? "\u{0}unset"])
                configuration.append((line, instruction.text))
            case .env(let pairs):
                for (name, value) in pairs {
                    env[name] = try substitute(value)
                }
                key = hash([key, "ENV"] + pairs.flatMap { [$0.0, env[$0.0] ?? ""] })
                configuration.append((line, instruction.text))
            case .workdir(let path):
                let resolved = try substitute(path)
                workdir = resolved.hasPrefix("/") ? resolved : (workdir as NSString).appendingPathComponent(resolved)
                workdir = (workdir as NSString).standardizingPath
                key = hash([key, "WORKDIR", workdir])
                configuration.append((line, instruction.text))
            case .user(let name):
                let resolved = try substitute(name)
                guard !resolved.isEmpty, resolved.utf8.count <= 64,
                    resolved.allSatisfy({ $0.isLetter || $0.isNumber || "-_.:".contains($0) })
                else { throw OmniRunError(.invalidArgument, "Dockerfile: line \(line): invalid USER '\(resolved)'") }
                user = resolved
                key = hash([key, "USER", resolved])
                configuration.append((line, instruction.text))
            case .shell(let argv):
                shell = argv == Dockerfile.defaultShell ? nil : argv
                configuration.append((line, instruction.text))
            case .expose(let words):
                for word in words { ports += try exposedPorts(try substitute(word), line: line) }
                configuration.append((line, instruction.text))
            case .cmd(let command):
                cmd = render(command)
                configuration.append((line, instruction.text))
            case .entrypoint(let command):
                if case .shell = command { entrypoint = (render(command), true) } else { entrypoint = (render(command), false) }
                configuration.append((line, instruction.text))
            case .healthcheck(let command):
                ready = command.map { shellCommand(render($0)) }
                configuration.append((line, instruction.text))
            case .ignored:
                configuration.append((line, instruction.text))
            case .run(let text, let argv):
                // ARG values are in the step's environment (not in the image), as in Docker.
                let stepEnv = args.merging(env) { _, e in e }
                var parts = ["RUN", text ?? "", (argv ?? []).joined(separator: "\u{0}"), environmentText(stepEnv), workdir, user ?? "root"]
                if let shell, argv == nil { parts += ["SHELL"] + shell }
                if instruction.withoutNetwork { parts.append("network=none") }
                addStep(.run(shell: text, argv: argv), keyParts: parts, user: user ?? "root", stepEnv: stepEnv)
            case .copy(let sources, let destination, let chown, let chmod, let isAdd):
                let resolvedSources = try sources.map { try substitute($0) }
                let owner = try chown.map { try substitute($0) }
                let into = try target(destination)
                if isAdd, let url = resolvedSources.first, url.contains("://") {
                    addStep(
                        .download(url: url, destination: into, chown: owner, chmod: chmod),
                        keyParts: ["ADD-URL", url, into, owner ?? "", chmod ?? ""])
                    continue
                }
                for source in resolvedSources where source.split(separator: "/").contains("..") {
                    throw OmniRunError(
                        .invalidArgument, "Dockerfile: line \(line): \(isAdd ? "ADD" : "COPY") source '\(source)' leaves the build context")
                }
                guard let contextHash else {
                    throw OmniRunError(
                        .invalidArgument,
                        "Dockerfile: line \(line): \(isAdd ? "ADD" : "COPY") needs a build context (the `context` tar part)")
                }
                addStep(
                    .copy(sources: resolvedSources, destination: into, chown: owner, chmod: chmod, extract: isAdd),
                    keyParts: [isAdd ? "ADD" : "COPY", resolvedSources.joined(separator: "\u{0}"), into, owner ?? "", chmod ?? "", contextHash])
            case .copyFrom(let name, let sources, let destination, let chown, let chmod):
                let resolvedName = try substitute(name)
                guard let templateName = TemplateBuilder.baseTemplate(for: resolvedName) else {
                    throw OmniRunError(
                        .invalidArgument, "Dockerfile: line \(line): COPY --from=\(resolvedName): only a built-in template (there are no other stages)")
                }
                let image: (rootfs: String, key: String)
                do {
                    image = try template(templateName)
                } catch let error as OmniRunError {
                    throw OmniRunError(error.code, "Dockerfile: line \(line): COPY --from=\(resolvedName): \(error.message)")
                }
                let paths = try sources.map { try imagePath(try substitute($0), line: line) }
                let owner = try chown.map { try substitute($0) }
                let into = try target(destination)
                addStep(
                    .copyFrom(template: templateName, image: image.rootfs, sources: paths, destination: into, chown: owner, chmod: chmod),
                    keyParts: ["COPY-FROM", templateName, image.key, paths.joined(separator: "\u{0}"), into, owner ?? "", chmod ?? ""])
            case .copyInline(let files, let destination, let chown, let chmod):
                let contents = try files.map { file in (file.name, file.quoted ? file.body : try substitute(file.body)) }
                let owner = try chown.map { try substitute($0) }
                let into = try target(destination)
                if files.count > 1, !into.hasSuffix("/") {
                    throw OmniRunError(
                        .invalidArgument, "Dockerfile: line \(line): COPY of several here-documents needs a folder (a destination ending in /)")
                }
                addStep(
                    .inline(files: contents, destination: into, chown: owner, chmod: chmod),
                    keyParts: ["COPY-INLINE"] + contents.flatMap { [$0.0, $0.1] } + [into, owner ?? "", chmod ?? ""])
            }
        }
        let start = entrypoint.map { $0.isShell ? $0.argv : $0.argv + (cmd ?? []) } ?? cmd
        return BuildPlan(
            steps: steps, env: env, workdir: workdir, user: user, ports: Array(Set(ports)).sorted(),
            startCommand: start.map(shellCommand), readyCommand: ready, finalKey: key, configurationLines: configuration)
    }

    /// An argument vector as one command for `bash -c` (a `/bin/sh -c` command as it is).
    static func shellCommand(_ argv: [String]) -> String {
        if argv.count == 3, Array(argv.prefix(2)) == Dockerfile.defaultShell { return argv[2] }
        return argv.map { word in
            word.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0)) }) && !word.isEmpty
                ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }

    /// `8000`, `8000/tcp`, `8000-8002/tcp`: the TCP ports (UDP ones are not reachable
    /// through exposures and are not recorded).
    static func exposedPorts(_ word: String, line: Int) throws -> [Int] {
        let parts = word.lowercased().split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.count == 1 || ["tcp", "udp", "sctp"].contains(String(parts[1])) else {
            throw OmniRunError(.invalidArgument, "Dockerfile: line \(line): EXPOSE \(word): expected PORT[/tcp|/udp]")
        }
        let bounds = parts[0].split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        guard (1...2).contains(bounds.count), let low = bounds.first ?? nil, let high = bounds.last ?? nil, (1...65535).contains(low),
            (low...65535).contains(high), high - low < 64
        else {
            throw OmniRunError(.invalidArgument, "Dockerfile: line \(line): EXPOSE \(word): ports are 1-65535 (ranges of at most 64)")
        }
        return parts.count == 2 && parts[1] != "tcp" ? [] : Array(low...high)
    }

    /// A path inside a template's image for `COPY --from`: absolute, plain (no wildcards,
    /// nothing that leaves the root), in characters the image reader takes.
    static func imagePath(_ text: String, line: Int) throws -> String {
        guard !text.isEmpty, text.utf8.count <= 1024,
            text.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-+@/".contains(Character($0))) })
        else {
            throw OmniRunError(
                .invalidArgument,
                "Dockerfile: line \(line): COPY --from source '\(text)': plain paths only (letters, digits and ._-+@/; no wildcards)")
        }
        let components = text.split(separator: "/")
        guard !components.contains("..") else {
            throw OmniRunError(.invalidArgument, "Dockerfile: line \(line): COPY --from source '\(text)' must not contain '..'")
        }
        return "/" + components.filter { $0 != "." }.joined(separator: "/")
    }

    static func environmentText(_ env: [String: String]) -> String {
        env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{0}")
    }

    /// SHA-256 of the parts (length-prefixed, so no two lists collide), 32 hex digits.
    static func hash(_ parts: [String]) -> String {
        var hasher = SHA256()
        for part in parts {
            let bytes = Array(part.utf8)
            hasher.update(data: Array("\(bytes.count):".utf8))
            hasher.update(data: bytes)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined().prefix(32).description
    }
}

extension Dockerfile {
    /// The shell of shell-form instructions until a `SHELL` changes it.
    static let defaultShell = ["/bin/sh", "-c"]
    /// PATH before any `ENV` sets it (what a sandbox's processes get), for `ENV PATH=…:$PATH`.
    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}
