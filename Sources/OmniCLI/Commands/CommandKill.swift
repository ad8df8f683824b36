import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni command kill ID PID`: stops a command started in the sandbox.
struct CommandKill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Stop a command of a sandbox.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(help: "The command's pid (see `omni command ps`).")
    var pid: Int

    func validate() throws {
        if pid < 1 { throw ValidationError("a pid is a positive number") }
    }

    func run() async throws {
        try await reporting {
            try await connection.client().call(.DELETE, "/sandboxes/\(sandbox)/commands/\(pid)")
            connection.emit(["sandboxID": sandbox, "pid": pid, "killed": true]) { "Stopped \(pid) in \(sandbox)." }
        }
    }
}
