import ArgumentParser
import NIOHTTP1

/// `omni auth logout`: forget the saved key (the key itself stays valid until it expires or is revoked).
struct AuthLogout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "Remove the saved credentials.")

    @OptionGroup var connection: Connection

    func run() async throws {
        Credentials.remove()
        connection.emit(["removed": Credentials.path]) { "Removed \(Credentials.path)." }
    }
}
