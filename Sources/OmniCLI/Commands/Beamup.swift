import ArgumentParser
import Foundation
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// `omni beamup claude|codex|desktop`: one command from nothing to an agent (or a desktop)
/// running in a new sandbox, with the terminal attached.
struct Beamup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Launch a coding agent (Claude Code, Codex) or a desktop in a new sandbox and attach to it.",
        discussion: """
            The agents run in the claude-code and codex templates and reach the LLM proxy through the \
            sandbox's host gateway: they work without internet access and every token is charged to \
            your account. Gemini CLI and OpenClaw are not offered (they install only from the npm registry).
            """,
        subcommands: [BeamupClaude.self, BeamupCodex.self, BeamupDesktop.self])
}

/// What every `beamup` takes: the sandbox's lifetime, network and variables, and preview URLs.
struct BeamupOptions: ParsableArguments {
    @Option(help: "Seconds before the sandbox is killed (0 = never; default 3600).")
    var timeout: Int?

    @Flag(help: "Never expire the sandbox (timeout 0; --timeout wins).")
    var permanent = false

    @Flag(inversion: .prefixedNo, help: "Give the sandbox internet access (default: none; the agents reach the LLM proxy without it).")
    var internet = false

    @Option(name: .customLong("env"), help: "An environment variable, NAME=value (repeatable).")
    var environment: [String] = []

    @Flag(help: "Inject the vault's credentials (e.g. your own ANTHROPIC_API_KEY: then the agent calls its vendor directly and needs --internet).")
    var vaultInject = false

    @Option(name: .customLong("expose"), help: "Create a preview URL for this port of the sandbox (repeatable).")
    var expose: [Int] = []

    @Option(name: .customLong("preview-ttl"), help: "Preview URL lifetime in seconds.")
    var previewTTL: Int?

    @Option(name: .customLong("preview-path"), help: "Path the preview URLs open at.")
    var previewPath: String?

    @Flag(name: .customLong("private-preview"), help: "Preview URLs that need their access token.")
    var privatePreview = false

    @Flag(help: "Start and return without attaching this terminal (also when stdin is not a terminal).")
    var detach = false

    @Flag(name: [.customShort("y"), .long], help: "Ask nothing (beamup asks nothing; kept for scripts written for other OmniRun CLIs).")
    var yes = false

    func validate() throws {
        if let timeout, timeout < 0 { throw ValidationError("--timeout must be 0 or more seconds") }
        if let bad = expose.first(where: { !(1...65535).contains($0) }) { throw ValidationError("--expose \(bad) is not a port") }
        if let previewTTL, previewTTL <= 0 { throw ValidationError("--preview-ttl must be a positive number of seconds") }
        if let previewPath, !previewPath.hasPrefix("/") { throw ValidationError("--preview-path must start with /") }
    }

    var resolvedTimeout: Int { timeout ?? (permanent ? 0 : 3600) }

    /// Whether the session attaches this terminal.
    var attaches: Bool { !detach && isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1 }

    /// Creates the sandbox; returns its id.
    func create(_ client: APIClient, template: String, json: Bool) async throws -> String {
        var body: [String: Any] = ["template": template, "timeout": resolvedTimeout]
        if !environment.isEmpty { body["envVars"] = try pairs(environment, "--env") }
        if vaultInject { body["vaultInject"] = true }
        if internet { body["internet"] = true }
        let started = Date()
        if !json { note("Creating a \(template) sandbox…") }
        let created = try await client.call(.POST, "/sandboxes", json: body).object
        let id = string(created["sandboxID"])
        if !json { note(String(format: "Sandbox %@ is running (%.1f s).", id, Date().timeIntervalSince(started))) }
        return id
    }

    /// The preview URLs asked for with --expose (not waited for: the port may open later).
    func previews(_ client: APIClient, sandbox: String, json: Bool) async throws -> [[String: Any]] {
        var made: [[String: Any]] = []
        for port in expose {
            var body: [String: Any] = ["port": port, "visibility": privatePreview ? "private" : "public"]
            if let previewTTL { body["requestedTtlSeconds"] = previewTTL }
            if let previewPath { body["openPath"] = previewPath }
            let exposure = try await client.call(.POST, "/sandboxes/\(sandbox)/exposures", json: body).object
            if !json { say("Preview of port \(port): \(Self.url(of: exposure))") }
            made.append(exposure)
        }
        if !made.isEmpty, !json { note("They answer once something listens on the port (omni sandbox info \(sandbox)).") }
        return made
    }

    static func url(of exposure: [String: Any]) -> String {
        string(exposure["accessUrl"]).isEmpty ? string(exposure["url"]) : string(exposure["accessUrl"])
    }
}

/// `text` as one word for a shell: as is when it holds only characters no shell treats
/// specially, else in single quotes.
func shellQuoted(_ text: String) -> String {
    let plain = !text.isEmpty && text.unicodeScalars.allSatisfy {
        ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_./=:,@%+".unicodeScalars.contains($0)
    }
    return plain ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
