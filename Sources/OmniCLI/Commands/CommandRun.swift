import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni command run ID -- COMMAND`: runs it and prints its output when it ends (or as it
/// comes with --stream); --background starts it and prints its pid. Exits with its exit code.
struct CommandRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a command in a sandbox (bash): its output at the end, --stream as it comes, or --background.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(parsing: .postTerminator, help: "The command, after --.")
    var command: [String] = []

    @Option(help: "Working directory.")
    var cwd: String?

    @Option(help: "Seconds before the command is killed.")
    var timeout = 60

    @Option(name: .customLong("env"), help: "An environment variable, NAME=value (repeatable).")
    var environment: [String] = []

    @Flag(help: "Start it and print its pid (see `omni command ps` and `omni command kill`).")
    var background = false

    @Flag(help: "Print its output as it is produced.")
    var stream = false

    func validate() throws {
        if background && stream { throw ValidationError("--background and --stream exclude each other") }
        if timeout < 0 { throw ValidationError("--timeout cannot be negative") }
    }

    func run() async throws {
        var exitCode: Int32 = 0
        try await reporting {
            guard !command.isEmpty else { throw CLIError("give the command after --", exitCode: 64) }
            let client = try connection.client()
            var body: [String: Any] = ["command": command.joined(separator: " "), "timeout": timeout]
            if let cwd { body["cwd"] = cwd }
            if !environment.isEmpty { body["envs"] = try pairs(environment, "--env") }
            let path = "/sandboxes/\(sandbox)/commands"
            if background || stream {
                body["background"] = true
                let pid = string(try await client.call(.POST, path, json: body).object["pid"])
                guard Int(pid).map({ $0 > 0 }) == true else { throw CLIError("the server answered no pid") }
                if background {
                    connection.emit(["sandboxID": sandbox, "pid": Int(pid) ?? 0, "background": true]) { pid }
                    return
                }
                exitCode = try await streamOutput(client, pid: pid)
                return
            }
            // The command's own timeout, and a margin for the answer to arrive.
            let result = try await client.call(.POST, path, json: body, timeout: Int64(timeout == 0 ? 86_400 : timeout + 30)).object
            exitCode = Int32(clamping: (result["exit_code"] as? Int) ?? -1)
            if connection.json {
                connection.emit(result) { "" }
            } else {
                FileHandle.standardOutput.write(Data(string(result["stdout"]).utf8))
                FileHandle.standardError.write(Data(string(result["stderr"]).utf8))
            }
        }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }

    /// Follows the command's output stream to its end; with --json the output is gathered
    /// into one `{stdout, stderr, exit_code, pid}` object.
    func streamOutput(_ client: APIClient, pid: String) async throws -> Int32 {
        let (exitCode, stdout, stderr) = try await followCommandOutput(client, sandbox: sandbox, pid: pid, gather: connection.json)
        if connection.json {
            connection.emit(["pid": Int(pid) ?? 0, "stdout": stdout, "stderr": stderr, "exit_code": Int(exitCode)]) { "" }
        }
        return exitCode
    }
}
