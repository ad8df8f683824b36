import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni desktop open ID`: the desktop's live view (noVNC, port 6080) as a private preview
/// URL with its token, opened in a browser.
struct DesktopOpen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open", abstract: "Open the desktop's live view in a browser (a private preview URL of noVNC).")

    @OptionGroup var connection: Connection

    @Argument(help: "Sandbox id (a sandbox from the desktop template).")
    var sandbox: String

    @Option(help: "Seconds to wait for the live view to be ready.")
    var wait = 30

    @Flag(help: "Only print the URL; open no browser.")
    var noBrowser = false

    func run() async throws {
        try await reporting {
            let client = try connection.client()
            let created = try await client.call(
                .POST, "/sandboxes/\(sandbox)/exposures",
                json: ["port": 6080, "visibility": "private", "openPath": "/vnc.html?autoconnect=1&resize=remote&path=websockify"]).object
            let exposure = try await Exposures.waitReady(client, sandbox: sandbox, created, seconds: wait)
            let url = Exposures.url(exposure)
            connection.emit(["sandboxID": sandbox, "url": url, "exposureId": string(exposure["id"])]) { url }
            if !noBrowser && !connection.json { openInBrowser(url) }
        }
    }
}
