import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni llm chat "question"`: tokens printed as they stream in.
struct LLMChat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chat", abstract: "Ask a model (the answer streams in).")

    @OptionGroup var connection: Connection

    @Option(name: .shortAndLong, help: "Model id (see `omni llm models`).")
    var model = "openai/gpt-4o-mini"

    @Option(help: "A system prompt.")
    var system: String?

    @Option(help: "The most tokens the answer may have.")
    var maxTokens: Int?

    @Option(help: "Sampling temperature (0 to 2).")
    var temperature: Double?

    @Flag(help: "Wait for the whole answer instead of streaming it.")
    var noStream = false

    @Argument(help: "The message (default: stdin).")
    var message: [String] = []

    func validate() throws {
        if let maxTokens, maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        if let temperature, !(0...2).contains(temperature) { throw ValidationError("--temperature must be from 0 to 2") }
    }

    func run() async throws {
        try await reporting {
            let text = message.isEmpty
                ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                : message.joined(separator: " ")
            var messages: [[String: String]] = []
            if let system { messages.append(["role": "system", "content": system]) }
            messages.append(["role": "user", "content": text])
            let client = try connection.client()
            var request: [String: Any] = ["model": model, "messages": messages]
            if let maxTokens { request["max_tokens"] = maxTokens }
            if let temperature { request["temperature"] = temperature }
            if noStream || connection.json {
                let answer = try await client.call(.POST, "/llm/v1/chat/completions", json: request.merging(["stream": false]) { $1 }).object
                connection.emit(answer) {
                    let choice = (answer["choices"] as? [[String: Any]])?.first
                    return string((choice?["message"] as? [String: Any])?["content"])
                }
                return
            }
            try await client.events(.POST, "/llm/v1/chat/completions", json: request.merging(["stream": true]) { $1 }) { event in
                if let chunk = event as? [String: Any], let choice = (chunk["choices"] as? [[String: Any]])?.first,
                   let piece = (choice["delta"] as? [String: Any])?["content"] as? String {
                    FileHandle.standardOutput.write(Data(piece.utf8))
                } else if let chunk = event as? [String: Any], let error = chunk["error"] {
                    throw CLIError("the stream failed: \(string((error as? [String: Any])?["message"] ?? error))", exitCode: ExitStatus.server)
                }
                return false
            }
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}
