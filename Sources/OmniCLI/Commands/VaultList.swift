import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni vault list`: names and dates, never values.
struct VaultList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List stored credentials (names only).")

    @OptionGroup var connection: Connection

    func run() async throws {
        try await reporting {
            // `{keys, credentials: [...]}` (servers before it answered the bare array).
            let reply = try await connection.client().call(.GET, "/vault/credentials")
            let credentials = reply.array.isEmpty ? reply.object["credentials"] as? [[String: Any]] ?? [] : reply.array
            connection.emit(credentials) {
                credentials.isEmpty ? "The vault is empty."
                    : table(["KEY", "UPDATED"], credentials.map { [string($0["key"]), string($0["updatedAt"])] })
            }
        }
    }
}
