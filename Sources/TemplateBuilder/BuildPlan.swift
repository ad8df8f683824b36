import Crypto
import Foundation
import OmniRunError

/// A Dockerfile turned into what a build does: the steps that change the disk (each a
/// cached layer keyed by its content and its parent) and the configuration the
/// instructions leave behind (ENV, WORKDIR, USER).
struct BuildPlan: Sendable {
    /// A step that runs in a build machine and leaves a layer.
    struct Step: Sendable {
        enum Action: Sendable {
            case run(shell: String?, argv: [String]?)
            case copy(sources: [String], destination: String, chown: String?, chmod: String?, extract: Bool)
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
        /// Layer key: its parent's key and everything the step depends on.
        var key: String
    }

    var steps: [Step]
    /// Where the instructions left off: the template's own configuration.
    var env: [String: String]
    var workdir: String
    var user: String?
    /// Key of the last layer (the base's when there are no steps).
    var finalKey: String
    /// Instructions that only change the configuration, for the log.
    var configurationLines: [(line: Int, title: String)]

    /// - Parameters:
    ///   - scope: isolates caches (the account): layers are never shared between accounts.
    ///   - baseKey: the base image's key.
    ///   - contextHash: hash of the build context, for COPY and ADD.
    static func make(
        _ dockerfile: Dockerfile, buildArgs: [String: String], scope: String, baseKey: String, growTo diskMB: Int?,
        contextHash: String?
    ) throws -> BuildPlan {
        var key = hash(["layer-v1", scope, baseKey])
        var steps: [Step] = []
        var env: [String: String] = [:]
        var args: [String: String] = [:]
        var workdir = "/"
        var user: String?
        var configuration: [(Int, String)] = []
        if let diskMB {
            key = hash([key, "grow", "\(diskMB)"])
            steps.append(
                Step(
                    action: .growFileSystem, line: 0, title: "grow the root file system to \(diskMB) MiB", env: [:],
                    workdir: "/", user: "root", key: key))
        }
        for instruction in dockerfile.instructions {
            let variables = args.merging(env) { _, e in e }
            switch instruction.kind {
            case .arg(let name, let defaultValue):
                let value = buildArgs[name] ?? defaultValue
                if let value { args[name] = value } else { args[name] = nil }
                key = hash([key, "ARG", name, value ?? "\u{0}unset"])
                configuration.append((instruction.line, instruction.text))
            case .env(let pairs):
                for (name, value) in pairs {
                    env[name] = try Dockerfile.substitute(value, variables, line: instruction.line)
                }
                key = hash([key, "ENV"] + pairs.flatMap { [$0.0, env[$0.0] ?? ""] })
                configuration.append((instruction.line, instruction.text))
            case .workdir(let path):
                let resolved = try Dockerfile.substitute(path, variables, line: instruction.line)
                workdir = resolved.hasPrefix("/") ? resolved : (workdir as NSString).appendingPathComponent(resolved)
                workdir = (workdir as NSString).standardizingPath
                key = hash([key, "WORKDIR", workdir])
                configuration.append((instruction.line, instruction.text))
            case .user(let name):
                let resolved = try Dockerfile.substitute(name, variables, line: instruction.line)
                guard !resolved.isEmpty, resolved.utf8.count <= 64,
                    resolved.allSatisfy({ $0.isLetter || $0.isNumber || "-_.:".contains($0) })
                else { throw OmniRunError(.invalidArgument, "Dockerfile: line \(instruction.line): invalid USER '\(resolved)'") }
                user = resolved
                key = hash([key, "USER", resolved])
                configuration.append((instruction.line, instruction.text))
            case .run(let shell, let argv):
                // ARG values are in the step's environment (not in the image), as in Docker.
                let stepEnv = args.merging(env) { _, e in e }
                key = hash([key, "RUN", shell ?? "", (argv ?? []).joined(separator: "\u{0}"), environmentText(stepEnv), workdir, user ?? "root"])
                steps.append(
                    Step(
                        action: .run(shell: shell, argv: argv), line: instruction.line, title: instruction.text, env: stepEnv,
                        workdir: workdir, user: user ?? "root", key: key))
            case .copy(let sources, let destination, let chown, let chmod, let isAdd):
                let resolvedSources = try sources.map { try Dockerfile.substitute($0, variables, line: instruction.line) }
                for source in resolvedSources where source.split(separator: "/").contains("..") {
                    throw OmniRunError(
                        .invalidArgument, "Dockerfile: line \(instruction.line): \(isAdd ? "ADD" : "COPY") source '\(source)' leaves the build context")
                }
                guard let contextHash else {
                    throw OmniRunError(
                        .invalidArgument,
                        "Dockerfile: line \(instruction.line): \(isAdd ? "ADD" : "COPY") needs a build context (the `context` tar part)")
                }
                var target = try Dockerfile.substitute(destination, variables, line: instruction.line)
                let isDirectory = target.hasSuffix("/") || target == "." || target.hasSuffix("/.")
                if !target.hasPrefix("/") { target = (workdir as NSString).appendingPathComponent(target) }
                target = (target as NSString).standardizingPath
                if isDirectory && target != "/" { target += "/" }
                let owner = try chown.map { try Dockerfile.substitute($0, variables, line: instruction.line) }
                key = hash(
                    [key, isAdd ? "ADD" : "COPY", resolvedSources.joined(separator: "\u{0}"), target, owner ?? "", chmod ?? "", contextHash])
                steps.append(
                    Step(
                        action: .copy(sources: resolvedSources, destination: target, chown: owner, chmod: chmod, extract: isAdd),
                        line: instruction.line, title: instruction.text, env: [:], workdir: workdir, user: "root", key: key))
            }
        }
        return BuildPlan(
            steps: steps, env: env, workdir: workdir, user: user, finalKey: key, configurationLines: configuration)
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
