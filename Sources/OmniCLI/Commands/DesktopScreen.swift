import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni desktop screen ID`: the screen's size and where the pointer is.
struct DesktopScreen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "screen", abstract: "Show the desktop's screen size and pointer position.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    func run() async throws {
        try await reporting {
            let screen = try await connection.client().call(.GET, "/sandboxes/\(sandbox)/desktop/screen").object
            connection.emit(screen) {
                "\(string(screen["width"]))x\(string(screen["height"])), pointer at \(string(screen["cursorX"])),\(string(screen["cursorY"]))"
            }
        }
    }
}
