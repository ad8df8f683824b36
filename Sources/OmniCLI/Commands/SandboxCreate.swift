import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox create [TEMPLATE]`: prints the new sandbox's id.
struct SandboxCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a sandbox; prints its id.")

    @OptionGroup var connection: Connection

    @Argument(help: "Template (see `omni template list`).")
    var template = "playground"

    @Option(help: "Seconds before the sandbox is killed (0 = never).")
    var timeout = 300

    @Option(name: .customLong("env"), help: "An environment variable, NAME=value (repeatable).")
    var environment: [String] = []

    @Option(help: "Metadata, key=value (repeatable).")
    var metadata: [String] = []

    @Flag(help: "Inject the vault's credentials as environment variables.")
    var vaultInject = false

    @Flag(help: "Give the sandbox internet access (default: none, a true air gap).")
    var internet = false

    func run() async throws {
        try await reporting {
            var body: [String: Any] = ["template": template, "timeout": timeout]
            if !environment.isEmpty { body["envVars"] = try pairs(environment, "--env") }
            if !metadata.isEmpty { body["metadata"] = try pairs(metadata, "--metadata") }
            if vaultInject { body["vaultInject"] = true }
            if internet { body["internet"] = true }
            let started = Date()
            if !connection.json { note("Creating a sandbox from \(template)…") }
            let created = try await connection.client().call(.POST, "/sandboxes", json: body).object
            let id = string(created["sandboxID"])
            connection.emit(created) { id }
            if !connection.json { note(String(format: "Ready in %.1f s.", Date().timeIntervalSince(started))) }
        }
    }
}

/// `["A=1", "B=2"]` as a dictionary; `flag` names the option in the error.
func pairs(_ values: [String], _ flag: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for value in values {
        guard let equals = value.firstIndex(of: "="), equals != value.startIndex else {
            throw CLIError("\(flag) takes NAME=value, not '\(value)'", exitCode: 64)
        }
        result[String(value[..<equals])] = String(value[value.index(after: equals)...])
    }
    return result
}
