import ArgumentParser
import Foundation
import NIOHTTP1

/// `omni beamup desktop`: a desktop sandbox and the URL of its live view (noVNC on port 6080,
/// through a private exposure whose access URL carries the token), then a shell in it.
struct BeamupDesktop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "desktop", abstract: "Launch a desktop sandbox; prints the URL of its live view (noVNC) and opens a shell.")

    @OptionGroup var connection: Connection
    @OptionGroup var options: BeamupOptions

    @Option(help: "Template to create the sandbox from.")
    var template = "desktop"

    @Option(help: "Screen size, WIDTHxHEIGHT (default: the template's, 1024x768).")
    var resolution: String?

    @Flag(help: "Open the live view in the local browser (xdg-open).")
    var open = false

    func validate() throws {
        if let resolution {
            let parts = resolution.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, (320...7680).contains(parts[0]), (200...4320).contains(parts[1]) else {
                throw ValidationError("--resolution takes WIDTHxHEIGHT, e.g. 1280x800")
            }
        }
    }

    func run() async throws {
        try await reporting {
            let client = try connection.client()
            let id = try await options.create(client, template: template, json: connection.json)
            // The desktop is up when the X server answers.
            let deadline = Date().addingTimeInterval(60)
            while try await client.send(.GET, "/sandboxes/\(id)/desktop/screen").status != 200 {
                guard Date() < deadline else { throw CLIError("the desktop of sandbox \(id) did not come up in 60 s") }
                try await Task.sleep(for: .milliseconds(500))
            }
            if let resolution {
                let resized = try await client.call(.POST, "/sandboxes/\(id)/commands", json: ["command": "xrandr --fb \(resolution)"]).object
                if (resized["exit_code"] as? Int) != 0 { note("The screen stays at its size: \(string(resized["stderr"]))") }
            }
            let info = try await client.call(.GET, "/sandboxes/\(id)/desktop/stream").object
            let port = info["novncPort"] as? Int ?? 6080
            var exposure = try await client.call(
                .POST, "/sandboxes/\(id)/exposures",
                json: ["port": port, "visibility": "private", "openPath": "/vnc.html?autoconnect=1&resize=remote&path=websockify"]
            ).object
            while string(exposure["status"]) != "ready" {
                guard Date() < deadline.addingTimeInterval(30) else { throw CLIError("the live view of sandbox \(id) is not ready") }
                try await Task.sleep(for: .milliseconds(300))
                exposure = try await client.call(.GET, "/sandboxes/\(id)/exposures/\(string(exposure["id"]))").object
            }
            let url = BeamupOptions.url(of: exposure)
            let previews = try await options.previews(client, sandbox: id, json: connection.json)
            guard options.attaches, !connection.json else {
                connection.emit(["sandboxID": id, "template": template, "desktopUrl": url, "previews": previews]) {
                    "Desktop of sandbox \(id): \(url)"
                }
                return
            }
            say("Desktop of sandbox \(id): \(url)")
            if open { openInBrowser(url) }
            note("A shell in the sandbox follows (exit it to leave; the sandbox keeps running: omni sandbox kill \(id)).")
            try await PTYSession(client: client, sandbox: id).run()
        }
    }
}
