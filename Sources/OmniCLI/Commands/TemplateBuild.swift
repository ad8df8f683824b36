import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni template build DIR --name NAME`: uploads the Dockerfile and the folder (as a tar),
/// then prints each step and the build's log as they happen; fails if the build fails.
struct TemplateBuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build", abstract: "Build a template from a folder with a Dockerfile (the folder is the build context).")

    @OptionGroup var connection: Connection

    @Argument(help: "The build context folder.") var directory = "."
    @Option(help: "Template name.") var name: String
    @Option(name: .shortAndLong, help: "The Dockerfile, relative to the folder.") var file = "Dockerfile"
    @Option(help: "Started before the snapshot (a service every sandbox finds running).") var startCmd: String?
    @Option(help: "Retried until it exits 0; then the snapshot is taken.") var readyCmd: String?
    @Flag(help: "Run every step again instead of reusing cached layers.") var noCache = false

    func run() async throws {
        try await reporting {
            guard let dockerfile = FileManager.default.contents(atPath: directory + "/" + file) else {
                throw CLIError("no \(file) in \(directory)", exitCode: ExitStatus.notFound)
            }
            var settings: [String: Any] = ["name": name]
            if let startCmd { settings["startCmd"] = startCmd }
            if let readyCmd { settings["readyCmd"] = readyCmd }
            if noCache { settings["noCache"] = true }
            let context = try tar(directory)
            let boundary = "omni-\(UUID().uuidString)"
            var body = Data()
            func field(_ field: String, _ value: Data, filename: String? = nil) {
                body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"".utf8)
                if let filename { body += Data("; filename=\"\(filename)\"\r\nContent-Type: application/x-tar".utf8) }
                body += Data("\r\n\r\n".utf8) + value + Data("\r\n".utf8)
            }
            field("dockerfile", dockerfile)
            field("settings", try JSONSerialization.data(withJSONObject: settings))
            field("context", context, filename: "context.tar")
            body += Data("--\(boundary)--\r\n".utf8)
            let client = try connection.client()
            let startedAt = Date()
            let started = try await client.call(.POST, "/templates", body: body, contentType: "multipart/form-data; boundary=\(boundary)").object
            let build = string(started["buildID"])
            var status = "building"
            var failure = ""
            // Each step as it runs (step n/N, its instruction, cached or not, how long) and the log.
            try await client.events(.GET, "/templates/\(name)/builds/\(build)") { event in
                guard let event = event as? [String: Any] else { return false }
                let type = event["type"] as? String
                if type == "log" || type == "step", !connection.json {
                    note(String(format: "%6.1fs  ", Date().timeIntervalSince(startedAt)) + string(event["line"]))
                }
                if event["type"] as? String == "end" {
                    status = string(event["status"])
                    failure = string(event["error"])
                    return true
                }
                return false
            }
            connection.emit(["templateID": name, "buildID": build, "status": status, "error": failure]) {
                status == "ready" ? "Template \(name) is ready: omni sandbox create \(name)" : ""
            }
            if status != "ready" { throw CLIError("the build of \(name) failed: \(failure)", exitCode: ExitStatus.failure) }
        }
    }

    private func tar(_ folder: String) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/tar")
        // As `omnirun template build` packs it (owned by root, no VCS folders): the same
        // folder is the same context, so both find each other's cached layers.
        process.arguments = ["-c", "-f", "-", "-C", folder, "--exclude-vcs", "--owner=0", "--group=0", "."]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CLIError("tar of \(folder) failed") }
        return data
    }
}
