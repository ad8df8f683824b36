import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox close ID EXPOSURE`: revokes a preview URL (it answers no more).
struct SandboxClose: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "close", abstract: "Close a preview URL of a sandbox.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(help: "Exposure id (see `omni sandbox exposures`).")
    var exposure: String

    func run() async throws {
        try await reporting {
            try await connection.client().call(.DELETE, "/sandboxes/\(sandbox)/exposures/\(exposure)")
            connection.emit(["sandboxID": sandbox, "exposureId": exposure, "closed": true]) { "Closed \(exposure)." }
        }
    }
}
