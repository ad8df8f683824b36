import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni llm models`.
struct LLMModels: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "models", abstract: "List the models of the LLM proxy.")

    @OptionGroup var connection: Connection

    func run() async throws {
        try await reporting {
            let models = try await connection.client().call(.GET, "/llm/v1/models").object["data"] as? [[String: Any]] ?? []
            connection.emit(models) { models.map { string($0["id"]) }.joined(separator: "\n") }
        }
    }
}
