import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni auth init --api-key KEY`: save a key you already have (checked first).
struct AuthInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Save an API key (and server URL) after checking it with the server.")

    @OptionGroup var connection: Connection

    func run() async throws {
        try await reporting {
            guard let key = connection.apiKey ?? ProcessInfo.processInfo.environment["OMNIRUN_API_KEY"], !key.isEmpty else {
                throw CLIError("pass --api-key KEY", exitCode: ExitStatus.auth)
            }
            let me = try await APIClient(baseURL: connection.resolvedURL, apiKey: key).call(.GET, "/auth/me").object
            let email = me["email"] as? String
            try Credentials(apiUrl: connection.resolvedURL, apiKey: key, email: email).save()
            connection.emit(["email": email ?? "", "apiUrl": connection.resolvedURL, "credentials": Credentials.path]) {
                "Saved the key of \(email ?? "this account") for \(connection.resolvedURL) in \(Credentials.path)."
            }
        }
    }
}
