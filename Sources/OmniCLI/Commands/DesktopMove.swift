import ArgumentParser
import Foundation

/// `omni desktop move ID X Y`.
struct DesktopMove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "move", abstract: "Move the mouse pointer to a point of the desktop.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(help: "X, in screen pixels from the left.")
    var x: Int

    @Argument(help: "Y, in screen pixels from the top.")
    var y: Int

    func validate() throws {
        if x < 0 || y < 0 { throw ValidationError("coordinates cannot be negative") }
    }

    func run() async throws {
        try await reporting {
            try await Desktop.mouse(connection, sandbox: sandbox, ["action": "move", "x": x, "y": y], done: "moved to \(x),\(y)")
        }
    }
}
