import ArgumentParser
import Foundation

/// `omni desktop press ID KEY`: one key or chord (Return, ctrl+c, alt+Tab).
struct DesktopPress: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "press", abstract: "Press a key or a chord (e.g. Return, ctrl+a, alt+Tab).")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(help: "The key, e.g. Return, Escape, ctrl+c.")
    var key: String

    func run() async throws {
        try await reporting {
            try await Desktop.keyboard(connection, sandbox: sandbox, ["action": "press", "key": key], done: "pressed \(key)")
        }
    }
}
