import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox kill ID...`.
struct SandboxKill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Destroy sandboxes (permanent).")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox ids.")
    var sandboxes: [String]

    func validate() throws {
        if sandboxes.isEmpty { throw ValidationError("name at least one sandbox") }
    }

    func run() async throws {
        try await reporting {
            let client = try connection.client()
            for id in sandboxes {
                try await client.call(.DELETE, "/sandboxes/\(id)")
                E2EEKeys.remove(sandbox: id)
            }
            connection.emit(["killed": sandboxes]) { sandboxes.map { "Killed \($0)." }.joined(separator: "\n") }
        }
    }
}
