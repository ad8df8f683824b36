import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox open ID`: a public preview URL for a port (default 6080, the desktop's noVNC).
struct SandboxOpen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open", abstract: "Expose a port of a sandbox (default 6080, the desktop) and print its URL once ready.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Option(help: "Port inside the sandbox.")
    var port = 6080

    @Option(help: "Seconds to wait for the exposure to be ready.")
    var wait = 30

    func run() async throws {
        try await reporting {
            let client = try connection.client()
            let created = try await client.call(
                .POST, "/sandboxes/\(sandbox)/exposures", json: ["port": port, "visibility": "public"]).object
            let exposure = try await Exposures.waitReady(client, sandbox: sandbox, created, seconds: wait)
            connection.emit(exposure) { Exposures.url(exposure) }
        }
    }
}
