import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni vault rm KEY`.
struct VaultRm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete a credential.")

    @OptionGroup var connection: Connection

    @Argument(help: "Name.") var key: String

    func run() async throws {
        try await reporting {
            let name = key.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "_"))) ?? key
            try await connection.client().call(.DELETE, "/vault/credentials/\(name)")
            connection.emit(["deleted": key]) { "Deleted \(key)." }
        }
    }
}
