import ArgumentParser
import Foundation

/// `omni desktop type ID TEXT`: types text as if on a keyboard.
struct DesktopType: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "type", abstract: "Type text on the desktop's keyboard.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(help: "The text to type.")
    var text: String

    func run() async throws {
        try await reporting {
            try await Desktop.keyboard(connection, sandbox: sandbox, ["action": "type", "text": text], done: "typed \(text.count) characters")
        }
    }
}
