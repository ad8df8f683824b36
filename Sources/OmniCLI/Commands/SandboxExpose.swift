import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox expose ID PORT`: a preview URL for a port, with its lifetime, slug, path,
/// host handling and visibility; waits until it is ready unless --no-wait.
struct SandboxExpose: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expose", abstract: "Create a preview URL for a port of a sandbox; prints it once ready.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(help: "Port inside the sandbox (1-65535).")
    var port: Int

    @Option(help: "Seconds the preview URL lives (the server caps it).")
    var ttl: Int?

    @Option(help: "A custom slug for the preview host name.")
    var slug: String?

    @Option(help: "A path appended to the preview URL (e.g. /app).")
    var path: String?

    @Flag(help: "Send the sandbox's canonical host as Host instead of the preview host.")
    var rewriteHost = false

    @Flag(name: .customLong("private"), help: "Private: only the access URL (with its token) opens it.")
    var isPrivate = false

    @Flag(help: "Print it at once instead of waiting until it is ready.")
    var noWait = false

    @Option(help: "Seconds to wait for it to be ready.")
    var waitTimeout = 30

    @Flag(help: "Open the URL in a browser (xdg-open or open) once it is ready.")
    var open = false

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("the port must be from 1 to 65535, not \(port)") }
        if let ttl, ttl < 1 { throw ValidationError("--ttl must be at least 1 second") }
        if waitTimeout < 1 { throw ValidationError("--wait-timeout must be at least 1 second") }
    }

    func run() async throws {
        try await reporting {
            let client = try connection.client()
            var body: [String: Any] = ["port": port, "visibility": isPrivate ? "private" : "public"]
            if let ttl { body["requestedTtlSeconds"] = ttl }
            if let slug { body["slug"] = slug }
            if let path { body["openPath"] = path }
            if rewriteHost { body["preserveHost"] = false }
            var exposure = try await client.call(.POST, "/sandboxes/\(sandbox)/exposures", json: body).object
            if !noWait { exposure = try await Exposures.waitReady(client, sandbox: sandbox, exposure, seconds: waitTimeout) }
            connection.emit(exposure) { Exposures.describe(exposure) }
            if open { openInBrowser(Exposures.url(exposure)) }
        }
    }
}
