import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox refresh-exposure ID EXPOSURE [--ttl S]`: a new expiry for a preview URL.
struct SandboxRefreshExposure: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refresh-exposure", abstract: "Extend the life of a preview URL.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(help: "Exposure id (see `omni sandbox exposures`).")
    var exposure: String

    @Option(help: "Its new lifetime in seconds from now (default: the server's).")
    var ttl: Int?

    func validate() throws {
        if let ttl, ttl < 1 { throw ValidationError("--ttl must be at least 1 second") }
    }

    func run() async throws {
        try await reporting {
            var body: [String: Any] = [:]
            if let ttl { body["requestedTtlSeconds"] = ttl }
            let refreshed = try await connection.client().call(
                .POST, "/sandboxes/\(sandbox)/exposures/\(exposure)/refresh", json: body).object
            connection.emit(refreshed) { Exposures.describe(refreshed) }
        }
    }
}
