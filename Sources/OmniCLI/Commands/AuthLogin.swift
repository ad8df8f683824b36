import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni auth login`: an emailed code (or the link's token), then a saved session key.
struct AuthLogin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login", abstract: "Sign in with your email: a 6-digit code is sent; type it (or pass --code).")

    @OptionGroup var connection: Connection

    @Option(help: "Your email address.")
    var email: String

    @Option(help: "The code from the email (skips sending a new one and the prompt).")
    var code: String?

    func run() async throws {
        try await reporting {
            let client = connection.anonymousClient()
            var code = self.code
            if code == nil {
                try await client.call(.POST, "/auth/magic-link/request", json: ["email": email])
                note("A sign-in code was sent to \(email).")
                FileHandle.standardError.write(Data("Code: ".utf8))
                guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                    throw CLIError("no code given", exitCode: ExitStatus.auth)
                }
                code = line.trimmingCharacters(in: .whitespaces)
            }
            let reply = try await client.call(.POST, "/auth/otp/verify", json: ["email": email, "code": code ?? ""])
            var answer = reply.object
            if answer["mfaRequired"] as? Bool == true, let challenge = answer["mfaChallengeToken"] as? String {
                FileHandle.standardError.write(Data("Authenticator code: ".utf8))
                let totp = readLine(strippingNewline: true) ?? ""
                answer = try await client.call(.POST, "/auth/mfa/totp/verify", json: ["mfa_challenge_token": challenge, "code": totp]).object
            }
            guard let token = answer["token"] as? String else { throw CLIError("the server answered without a token") }
            try Credentials(apiUrl: connection.resolvedURL, apiKey: token, email: email).save()
            connection.emit(["email": email, "apiUrl": connection.resolvedURL, "credentials": Credentials.path]) {
                "Signed in as \(email) at \(connection.resolvedURL) (key saved in \(Credentials.path))."
            }
        }
    }
}
