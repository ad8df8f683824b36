import ArgumentParser
import Foundation
import NIOHTTP1

/// A coding agent `beamup` starts: it runs in a tmux session of its name in the sandbox's
/// workspace, so that it outlives the terminal and can be reattached.
struct CodingAgent {
    var name: String
    var title: String
    var command: [String]

    static let workspace = "/home/user/workspace"

    /// The shell command that starts the agent's tmux session (attached: or attaches to it).
    func tmux(detached: Bool) -> String {
        let agent = command.map(shellQuoted).joined(separator: " ")
        return "tmux -u new-session \(detached ? "-d" : "-A") -s \(name) -c \(Self.workspace) \(shellQuoted(agent))"
    }

    func launch(_ options: BeamupOptions, connection: Connection, template: String) async throws {
        let client = try connection.client()
        let id = try await options.create(client, template: template, json: connection.json)
        let previews = try await options.previews(client, sandbox: id, json: connection.json)
        let reattach = "omni shell \(id), then: tmux attach -t \(name)"
        guard options.attaches, !connection.json else {
            // Started in the background, in the same tmux session an attached launch uses.
            let started = try await client.call(
                .POST, "/sandboxes/\(id)/commands", json: ["command": tmux(detached: true), "timeout": 60]
            ).object
            guard (started["exit_code"] as? Int) == 0 else {
                throw CLIError("\(title) did not start in sandbox \(id): \(string(started["stderr"]))")
            }
            connection.emit(["sandboxID": id, "template": template, "agent": name, "attach": reattach, "previews": previews]) {
                "\(title) is running in sandbox \(id). Attach: \(reattach)"
            }
            return
        }
        note("Starting \(title)… (leave with its own exit, or detach with ctrl-b d; reattach: \(reattach))")
        try await PTYSession(client: client, sandbox: id, cwd: Self.workspace).run(firstInput: "exec \(tmux(detached: false))\n")
        note(
            "\nSandbox \(id) keeps running until its timeout: omni shell \(id) (and, if \(title) still runs there, "
                + "tmux attach -t \(name)); end it: omni sandbox kill \(id)")
    }
}

/// `omni beamup claude`: Claude Code in a claude-code sandbox.
struct BeamupClaude: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claude", abstract: "Launch Claude Code in a new sandbox (template claude-code) and attach to it.")

    @OptionGroup var connection: Connection
    @OptionGroup var options: BeamupOptions

    @Option(help: "Template to create the sandbox from.")
    var template = "claude-code"

    @Flag(help: "Run Claude Code with --dangerously-skip-permissions (the sandbox is the boundary).")
    var skipPermissions = false

    @Option(help: "Model to ask for (an id the LLM proxy routes, e.g. claude-sonnet-4-5).")
    var model: String?

    func run() async throws {
        try await reporting {
            var command = ["claude"]
            if skipPermissions { command.append("--dangerously-skip-permissions") }
            if let model { command += ["--model", model] }
            try await CodingAgent(name: "claude", title: "Claude Code", command: command)
                .launch(options, connection: connection, template: template)
        }
    }
}

/// `omni beamup codex`: the Codex CLI in a codex sandbox.
struct BeamupCodex: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codex", abstract: "Launch the OpenAI Codex CLI in a new sandbox (template codex) and attach to it.")

    @OptionGroup var connection: Connection
    @OptionGroup var options: BeamupOptions

    @Option(help: "Template to create the sandbox from.")
    var template = "codex"

    @Option(help: "Model to ask for (an id the LLM proxy routes, e.g. gpt-5-codex).")
    var model: String?

    func run() async throws {
        try await reporting {
            var command = ["codex"]
            if let model { command += ["--model", model] }
            try await CodingAgent(name: "codex", title: "Codex", command: command).launch(options, connection: connection, template: template)
        }
    }
}
