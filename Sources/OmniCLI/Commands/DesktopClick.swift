import ArgumentParser
import Foundation

/// `omni desktop click ID X Y [--right | --double]`.
struct DesktopClick: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "click", abstract: "Click at a point of the desktop (left by default).")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(help: "X, in screen pixels from the left.")
    var x: Int

    @Argument(help: "Y, in screen pixels from the top.")
    var y: Int

    @Flag(help: "Right click.")
    var right = false

    @Flag(help: "Double click.")
    var double = false

    func validate() throws {
        if right && double { throw ValidationError("--right and --double exclude each other") }
        if x < 0 || y < 0 { throw ValidationError("coordinates cannot be negative") }
    }

    func run() async throws {
        try await reporting {
            let action = right ? "rightClick" : double ? "doubleClick" : "click"
            try await Desktop.mouse(connection, sandbox: sandbox, ["action": action, "x": x, "y": y], done: "\(action) at \(x),\(y)")
        }
    }
}
