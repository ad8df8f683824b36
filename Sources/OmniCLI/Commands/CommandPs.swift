import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni command ps ID`: the commands a sandbox runs or has run (finished ones are kept).
struct CommandPs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List the commands of a sandbox, running and finished.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    func run() async throws {
        try await reporting {
            let processes = try await connection.client().call(.GET, "/sandboxes/\(sandbox)/commands").array
            connection.emit(processes) {
                processes.isEmpty ? "No commands."
                    : table(["PID", "RUNNING", "EXIT", "COMMAND"], processes.map {
                        let running = ($0["running"] as? Bool) ?? false
                        return [string($0["pid"]), running ? "yes" : "no", running ? "" : string($0["exit_code"] ?? $0["exitCode"]),
                                string($0["command"]).replacingOccurrences(of: "\n", with: " ")]
                    })
            }
        }
    }
}
