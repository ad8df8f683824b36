import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni vault set KEY [VALUE]` (VALUE from stdin when left out, so it stays out of the shell history).
struct VaultSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Store a credential (value from stdin if not given).")

    @OptionGroup var connection: Connection

    @Argument(help: "Name (an environment variable name).") var key: String
    @Argument(help: "Value (default: stdin).") var value: String?

    func run() async throws {
        try await reporting {
            var secret = value ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            if value == nil, secret.hasSuffix("\n") { secret.removeLast() }
            let reply = try await connection.client().call(.POST, "/vault/credentials", json: ["key": key, "value": secret])
            connection.emit(["key": key, "created": reply.status == 201]) { reply.status == 201 ? "Stored \(key)." : "Replaced \(key)." }
        }
    }
}
