import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni desktop screenshot ID [--output FILE]`: the screen as a PNG file.
struct DesktopScreenshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "screenshot", abstract: "Save the desktop's screen as a PNG (default ./screenshot-ID.png; - for stdout).")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id (a sandbox from the desktop template).")
    var sandbox: String

    @Option(name: .shortAndLong, help: "The PNG file to write, or - for stdout.")
    var output: String?

    @Option(help: "Shrink the image by this factor (0 < scale ≤ 1).")
    var scale: Double?

    func validate() throws {
        if let scale, !(scale > 0 && scale <= 1) { throw ValidationError("--scale must be above 0 and at most 1") }
    }

    func run() async throws {
        try await reporting {
            let query = scale.map { [("scale", String($0))] } ?? []
            let reply = try await connection.client().call(.GET, "/sandboxes/\(sandbox)/desktop/screenshot", query: query, timeout: 120)
            let png = reply.data
            guard png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else {
                throw CLIError("the server's screenshot is not a PNG (\(png.count) bytes)")
            }
            let target = output ?? "screenshot-\(sandbox).png"
            if target == "-" {
                FileHandle.standardOutput.write(png)
                return
            }
            guard FileManager.default.createFile(atPath: target, contents: png) else { throw CLIError("cannot write \(target)") }
            let width = reply.headers.first(name: "X-OmniRun-Screen-Width") ?? ""
            let height = reply.headers.first(name: "X-OmniRun-Screen-Height") ?? ""
            connection.emit(["path": target, "bytes": png.count, "screenWidth": Int(width) ?? 0, "screenHeight": Int(height) ?? 0]) {
                "\(target) (\(png.count) bytes; screen \(width)x\(height))"
            }
        }
    }
}
