import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox info ID`.
struct SandboxInfo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show one sandbox.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    func run() async throws {
        try await reporting {
            let info = try await connection.client().call(.GET, "/sandboxes/\(sandbox)").object
            connection.emit(info) {
                ["sandboxID", "templateID", "state", "startedAt", "endAt", "cpuCount", "memoryMB"]
                    .filter { info[$0] != nil }.map { "\($0): \(string(info[$0]))" }.joined(separator: "\n")
            }
        }
    }
}
