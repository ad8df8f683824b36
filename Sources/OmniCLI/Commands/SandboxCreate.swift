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

    @Flag(help: "Secure mode: its preview URLs need the traffic token the server answers (printed on stderr).")
    var secure = false

    @Flag(help: "End-to-end encrypted requests: a P-256 key pair is made here and kept in the config folder, so every later command on this sandbox seals its requests and opens the answers.")
    var e2ee = false

    func run() async throws {
        try await reporting {
            var body: [String: Any] = ["template": template, "timeout": timeout]
            if !environment.isEmpty { body["envVars"] = try pairs(environment, "--env") }
            if !metadata.isEmpty { body["metadata"] = try pairs(metadata, "--metadata") }
            if vaultInject { body["vaultInject"] = true }
            if internet { body["internet"] = true }
            if secure { body["secure"] = true }
            let keyPair = e2ee ? E2EEKeys.generate() : nil
            if let keyPair {
                body["e2ee"] = true
                body["clientPublicKey"] = keyPair.publicKey
            }
            let started = Date()
            if !connection.json { note("Creating a sandbox from \(template)…") }
            let client = try connection.client()
            let created = try await client.call(.POST, "/sandboxes", json: body).object
            let id = string(created["sandboxID"])
            if let keyPair {
                let serverKey = string(created["serverPublicKey"]).isEmpty
                    ? string((created["e2ee"] as? [String: Any])?["serverPublicKey"]) : string(created["serverPublicKey"])
                do {
                    guard !serverKey.isEmpty else { throw CLIError("the server answered no serverPublicKey: it does not offer e2ee") }
                    try E2EEKeys.save(sandbox: id, privateKey: keyPair.privateKey, serverPublicKey: serverKey, apiUrl: client.baseURL)
                } catch {
                    // A sandbox this machine cannot talk to is of no use: remove it.
                    _ = try? await client.send(.DELETE, "/sandboxes/\(id)")
                    throw error
                }
            }
            connection.emit(created) { id }
            if !connection.json {
                if secure { note("Traffic token (header e2b-traffic-access-token for its previews): \(string(created["trafficToken"]))") }
                if e2ee, let path = E2EEKeys.path(id) { note("End-to-end encrypted; its key is kept in \(path).") }
                note(String(format: "Ready in %.1f s.", Date().timeIntervalSince(started)))
            }
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
