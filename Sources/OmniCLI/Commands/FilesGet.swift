import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni files get SANDBOX REMOTE [LOCAL]`: the raw bytes of a file ('-' or no LOCAL: stdout).
struct FilesGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Copy a file out of a sandbox.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.") var sandbox: String
    @Argument(help: "Path in the sandbox.") var remote: String
    @Argument(help: "Local file (default: stdout).") var local: String = "-"

    func run() async throws {
        try await reporting {
            let reply = try await connection.client().call(.GET, "/sandboxes/\(sandbox)/files/download", query: [("path", remote)])
            if local == "-" {
                FileHandle.standardOutput.write(reply.data)
                return
            }
            guard FileManager.default.createFile(atPath: local, contents: reply.data) else { throw CLIError("cannot write \(local)") }
            connection.emit(["path": local, "size": reply.data.count]) { "\(sandbox):\(remote) -> \(local) (\(reply.data.count) bytes)" }
        }
    }
}
