import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox exec ID -- COMMAND`: output streamed as it is produced; exits with the command's code.
struct SandboxExec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command in a sandbox (bash); exits with its exit code.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(parsing: .postTerminator, help: "The command, after --.")
    var command: [String] = []

    @Option(help: "Working directory.")
    var cwd: String?

    @Option(help: "Seconds before the command is killed.")
    var timeout = 600

    @Option(name: .customLong("env"), help: "An environment variable, NAME=value (repeatable).")
    var environment: [String] = []

    func run() async throws {
        var exitCode: Int32 = 0
        try await reporting {
            let words = command
            guard !words.isEmpty else { throw CLIError("give the command after --", exitCode: 64) }
            let client = try connection.client()
            var body: [String: Any] = ["command": words.joined(separator: " "), "timeout": timeout]
            if let cwd { body["cwd"] = cwd }
            if !environment.isEmpty { body["envs"] = try pairs(environment, "--env") }
            if connection.json {
                let result = try await client.call(.POST, "/sandboxes/\(sandbox)/commands", json: body).object
                connection.emit(result) { "" }
                exitCode = Int32(clamping: (result["exit_code"] as? Int) ?? 1)
                return
            }
            body["background"] = true
            let pid = string(try await client.call(.POST, "/sandboxes/\(sandbox)/commands", json: body).object["pid"])
            exitCode = try await followCommandOutput(client, sandbox: sandbox, pid: pid, gather: false).exitCode
        }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}
