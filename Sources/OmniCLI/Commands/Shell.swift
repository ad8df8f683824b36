import ArgumentParser
import Foundation

/// `omni shell ID`: an interactive terminal in a sandbox over the PTY API (see `PTYSession`).
struct Shell: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Open an interactive shell in a sandbox (exit the shell to leave).")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    func run() async throws {
        try await reporting {
            try await PTYSession(client: try connection.client(), sandbox: sandbox).run()
        }
    }
}
