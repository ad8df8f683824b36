import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni auth status`: the account of the current key, its limits and LLM spend.
struct AuthStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the signed-in account.")

    @OptionGroup var connection: Connection

    func run() async throws {
        try await reporting {
            let me = try await connection.client().call(.GET, "/auth/me").object
            connection.emit(me) {
                let spend = me["spend"] as? [String: Any] ?? [:]
                let limits = me["limits"] as? [String: Any] ?? [:]
                return """
                    \(string(me["email"])) (\(string(me["role"]))) at \(connection.resolvedURL)
                    sandboxes at once: \(string(limits["concurrentSandboxes"]))
                    LLM spend: \(string(spend["spendUsedCents"])) of \(string(spend["spendCapCents"])) cents
                    """
            }
        }
    }
}
