import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni files put SANDBOX LOCAL REMOTE`: a multipart upload (any size the server takes).
struct FilesPut: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Copy a local file into a sandbox.")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id.") var sandbox: String
    @Argument(help: "Local file ('-' for stdin).") var local: String
    @Argument(help: "Path in the sandbox (parents are created).") var remote: String

    func run() async throws {
        try await reporting {
            let content: Data
            if local == "-" {
                content = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let data = FileManager.default.contents(atPath: local) else {
                    throw CLIError("cannot read \(local)", exitCode: ExitStatus.notFound)
                }
                content = data
            }
            let started = Date()
            let boundary = "omni-\(UUID().uuidString)"
            var body = Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n\(remote)\r\n".utf8)
            let name = (remote as NSString).lastPathComponent
            body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            body += content
            body += Data("\r\n--\(boundary)--\r\n".utf8)
            let reply = try await connection.client().call(
                .POST, "/sandboxes/\(sandbox)/files/upload", body: body, contentType: "multipart/form-data; boundary=\(boundary)")
            let seconds = Date().timeIntervalSince(started)
            var answer = reply.object
            answer["path"] = answer["path"] ?? remote
            answer["size"] = answer["size"] ?? content.count
            connection.emit(answer) { "\(local) -> \(sandbox):\(remote) (\(content.count) bytes, \(String(format: "%.1f", seconds)) s)" }
        }
    }
}
