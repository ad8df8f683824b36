import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni files ls SANDBOX [PATH]`.
struct FilesLs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List a folder of a sandbox.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.") var sandbox: String
    @Argument(help: "Folder.") var path = "/home/user"
    @Option(help: "Levels to descend.") var depth = 1

    func run() async throws {
        try await reporting {
            var query = [("path", path)]
            if depth != 1 { query.append(("depth", String(depth))) }
            let entries = try await connection.client().call(.GET, "/sandboxes/\(sandbox)/files/list", query: query).array
            connection.emit(entries) {
                entries.map { entry in
                    let dir = entry["is_dir"] as? Bool == true
                    return (dir ? "d " : "- ") + string(entry["size"]).padding(toLength: 12, withPad: " ", startingAt: 0) + string(entry["path"]) + (dir ? "/" : "")
                }.joined(separator: "\n")
            }
        }
    }
}
