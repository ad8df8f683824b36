import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni llm usage`: spend against the cap.
struct LLMUsage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "usage", abstract: "Show your LLM spend and cap.")

    @OptionGroup var connection: Connection

    func run() async throws {
        try await reporting {
            let usage = try await connection.client().call(.GET, "/llm/v1/usage").object
            connection.emit(usage) {
                "spent \(string(usage["spendUsedCents"])) of \(string(usage["spendCapCents"])) cents (\(string(usage["remainingCents"])) left)"
            }
        }
    }
}
