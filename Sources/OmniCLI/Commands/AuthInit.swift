import ArgumentParser
import Foundation

/// `omni auth init`: with `--api-key KEY`, save a key you already have (checked first);
/// without one, the email sign-in (asks for the address unless `--email` gives it).
struct AuthInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Sign in: save an API key (--api-key, checked with the server first), or sign in with an emailed code.")

    @OptionGroup var connection: Connection

    @Option(help: "Your email address for the emailed code (asked for when missing).")
    var email: String?

    @Option(help: "The code from the email (skips sending a new one and the prompt).")
    var code: String?

    func run() async throws {
        try await reporting {
            guard let key = connection.apiKey ?? ProcessInfo.processInfo.environment["OMNIRUN_API_KEY"], !key.isEmpty else {
                let email = try self.email ?? prompt("Email: ")
                try await emailSignIn(connection, email: email, code: code)
                return
            }
            let client = APIClient(
                baseURL: connection.resolvedURL, apiKey: key, requestTimeoutMilliseconds: try connection.requestTimeoutMilliseconds())
            let me = try await client.call(.GET, "/auth/me").object
            let email = me["email"] as? String
            try Credentials(apiUrl: connection.resolvedURL, apiKey: key, email: email).save()
            connection.emit(["email": email ?? "", "apiUrl": connection.resolvedURL, "credentials": Credentials.path]) {
                "Saved the key of \(email ?? "this account") for \(connection.resolvedURL) in \(Credentials.path)."
            }
        }
    }
}
