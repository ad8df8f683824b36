import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni template list`.
struct TemplateList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the templates you can create sandboxes from.")

    @OptionGroup var connection: Connection

    func run() async throws {
        try await reporting {
            let templates = try await connection.client().call(.GET, "/templates").array
            connection.emit(templates) {
                table(["NAME", "STATUS", "CPU", "MEMORY", "DESCRIPTION"], templates.map {
                    [string($0["name"]), string($0["status"]), string($0["cpuCount"]), string($0["memoryMB"]) + " MiB", string($0["description"])]
                })
            }
        }
    }
}
