import ArgumentParser
import Foundation

/// `omni desktop scroll ID DIRECTION [--amount N]`.
struct DesktopScroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scroll", abstract: "Scroll the desktop: up, down, left or right.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(help: "up, down, left or right.")
    var direction: String

    @Option(help: "How many wheel clicks.")
    var amount = 3

    func validate() throws {
        guard ["up", "down", "left", "right"].contains(direction) else {
            throw ValidationError("the direction is up, down, left or right, not '\(direction)'")
        }
        guard (1...100).contains(amount) else { throw ValidationError("--amount must be from 1 to 100") }
    }

    func run() async throws {
        try await reporting {
            try await Desktop.mouse(
                connection, sandbox: sandbox, ["action": "scroll", "direction": direction, "amount": amount],
                done: "scrolled \(direction) \(amount)")
        }
    }
}
