import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox exposures ID`: every preview URL of a sandbox, closed and expired ones included.
struct SandboxExposures: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exposures", abstract: "List the preview URLs of a sandbox (expired and closed ones too).")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    func run() async throws {
        try await reporting {
            let exposures = try await connection.client().call(.GET, "/sandboxes/\(sandbox)/exposures").array
            connection.emit(exposures) { Exposures.table(exposures) }
        }
    }
}
