import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni vault list`: names and dates, never values.
struct VaultList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List stored credentials (names only).")

    @OptionGroup var connection: Connection

    func run() async throws {
        try await reporting {
            let credentials = try await connection.client().call(.GET, "/vault/credentials").array
            connection.emit(credentials) {
                credentials.isEmpty ? "The vault is empty."
                    : table(["KEY", "UPDATED"], credentials.map { [string($0["key"]), string($0["updatedAt"])] })
            }
        }
    }
}
