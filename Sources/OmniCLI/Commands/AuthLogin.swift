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
        try await reporting { try await emailSignIn(connection, email: email, code: code) }
    }
}

/// The email sign-in (`auth login`, and `auth init` without a key): the server mails a
/// 6-digit code, the user types it (or passes it), an authenticator code follows when the
/// account has one; the session key is saved in the credentials file.
func emailSignIn(_ connection: Connection, email: String, code: String?) async throws {
    let client = try connection.anonymousClient()
    var code = code
    if code == nil {
        try await client.call(.POST, "/auth/magic-link/request", json: ["email": email])
        note("A sign-in code was sent to \(email).")
        code = try prompt("Code: ")
    }
    let reply = try await client.send(.POST, "/auth/otp/verify", json: ["email": email, "code": code ?? ""])
    if reply.status == 401 {
        throw CLIError("\(APIClient.error(reply.status, reply.data).message); run the command again for a new code", exitCode: ExitStatus.auth)
    }
    guard (200..<300).contains(reply.status) else { throw APIClient.error(reply.status, reply.data) }
    var answer = reply.object
    if answer["mfaRequired"] as? Bool == true, let challenge = answer["mfaChallengeToken"] as? String {
        let totp = try prompt("Authenticator code: ")
        answer = try await client.call(.POST, "/auth/mfa/totp/verify", json: ["mfa_challenge_token": challenge, "code": totp]).object
    }
    guard let token = answer["token"] as? String else { throw CLIError("the server answered without a token") }
    try Credentials(apiUrl: connection.resolvedURL, apiKey: token, email: email).save()
    connection.emit(["email": email, "apiUrl": connection.resolvedURL, "credentials": Credentials.path]) {
        "Signed in as \(email) at \(connection.resolvedURL) (key saved in \(Credentials.path))."
    }
}

/// Asks on stderr and reads one line from stdin; an empty answer or end of input fails.
func prompt(_ question: String) throws -> String {
    FileHandle.standardError.write(Data(question.utf8))
    guard let line = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces), !line.isEmpty else {
        throw CLIError("no answer given to '\(question.trimmingCharacters(in: .whitespaces))'", exitCode: ExitStatus.auth)
    }
    return line
}
