import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension OmniRun {
    /// Custom templates on a server: build one from a folder with a Dockerfile, list, delete.
    struct Template: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build, list and delete templates on an OmniRun server.", subcommands: [Build.self, List.self, Delete.self])

        struct Server: ParsableArguments {
            @Option(help: "Server URL ($OMNIRUN_API_URL, default http://127.0.0.1:8080).")
            var url: String?

            @Option(help: "API key ($OMNIRUN_API_KEY, else the owner key of the local data directory).")
            var apiKey: String?

            func client() throws -> TemplateClient {
                let env = ProcessInfo.processInfo.environment
                let base = url ?? env["OMNIRUN_API_URL"] ?? "http://127.0.0.1:8080"
                let ownerKey = (env["OMNIRUN_DATA_DIR"] ?? (env["HOME"] ?? "/root") + "/.local/share/omnirun") + "/owner.key"
                guard
                    let key = apiKey ?? env["OMNIRUN_API_KEY"]
                        ?? (try? String(contentsOfFile: ownerKey, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                else {
                    throw ValidationError("no API key: pass --api-key or set OMNIRUN_API_KEY")
                }
                guard let parsed = URL(string: base), parsed.scheme != nil else { throw ValidationError("invalid --url '\(base)'") }
                return TemplateClient(base: parsed, key: key)
            }
        }

        struct Build: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Build a template from a folder holding a Dockerfile (the folder is the build context).")

            @Argument(help: "The build context folder.")
            var directory: String = "."

            @Option(help: "Template name (what Sandbox.create takes).")
            var name: String

            @Option(name: .shortAndLong, help: "The Dockerfile, relative to the folder.")
            var file: String = "Dockerfile"

            @Option(help: "Started before the snapshot is taken (a service every sandbox finds running).")
            var startCmd: String?

            @Option(help: "Retried until it exits 0; then the snapshot is taken.")
            var readyCmd: String?

            @Option(help: "Seconds the ready check may keep failing.")
            var readyTimeout: Int?

            @Option(help: "vCPUs of the template's sandboxes.")
            var cpu: Int?

            @Option(help: "Memory of the template's sandboxes, in MiB.")
            var memory: Int?

            @Option(help: "Root file system size in MiB (at least the base template's).")
            var disk: Int?

            @Option(name: .customLong("build-arg"), help: "NAME=value for an ARG (repeatable).")
            var buildArgs: [String] = []

            @Flag(help: "Run every step again instead of reusing cached layers.")
            var noCache = false

            @OptionGroup var server: Server

            func run() async throws {
                let client = try server.client()
                let dockerfile = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
                var settings: [String: Any] = ["name": name]
                if let startCmd { settings["startCmd"] = startCmd }
                if let readyCmd { settings["readyCmd"] = readyCmd }
                if let readyTimeout { settings["readyTimeout"] = readyTimeout }
                if let cpu { settings["cpuCount"] = cpu }
                if let memory { settings["memoryMB"] = memory }
                if let disk { settings["diskMB"] = disk }
                var args: [String: String] = [:]
                for pair in buildArgs {
                    guard let eq = pair.firstIndex(of: "=") else { throw ValidationError("--build-arg takes NAME=value") }
                    args[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
                }
                if !args.isEmpty { settings["buildArgs"] = args }
                if noCache { settings["noCache"] = true }
                say("[template] packing \(directory) as the build context")
                let context = try Self.tar(directory)
                say("[template] uploading (\(context.count / 1024) KiB of context) to \(client.base.absoluteString)")
                let started = Date()
                let reply = try await client.multipart(
                    "/templates",
                    fields: [("dockerfile", dockerfile), ("settings", String(decoding: try JSONSerialization.data(withJSONObject: settings), as: UTF8.self))],
                    file: ("context", context))
                guard reply.status == 202, let build = reply.object["buildID"] as? String else {
                    throw ValidationError("the server refused the build (\(reply.status)): \(reply.object["message"] as? String ?? reply.text)")
                }
                say("[template] build \(build) of \(name)")
                // Progress: each step (n/N, its instruction, cached or not, how long) and the
                // log as it happens, from the build's event stream.
                var outcome: (status: String, error: String)?
                do {
                    try await client.events("/templates/\(name)/builds/\(build)") { event in
                        let elapsed = String(format: "%6.1fs  ", Date().timeIntervalSince(started))
                        switch event["type"] as? String {
                        case "log", "step":
                            say(elapsed + (event["line"] as? String ?? ""))
                        case "end":
                            outcome = (event["status"] as? String ?? "failed", event["error"] as? String ?? "")
                            return true
                        default:
                            break
                        }
                        return false
                    }
                } catch {
                    say("[template] the build's event stream broke (\(error)); waiting for the build")
                }
                while outcome == nil {
                    let status = try await client.request("GET", "/templates/\(name)/builds/\(build)")
                    if let state = status.object["status"] as? String, state != "building" {
                        outcome = (state, status.object["error"] as? String ?? "")
                    } else {
                        try await Task.sleep(for: .seconds(1))
                    }
                }
                guard outcome?.status == "ready" else {
                    throw ValidationError("the build failed: \(outcome?.error ?? "?")")
                }
                say("[template] \(name) is ready (\(Int(Date().timeIntervalSince(started))) s): Sandbox.create('\(name)')")
            }

            /// The folder as a tar (owned by root, without VCS folders).
            static func tar(_ directory: String) throws -> Data {
                let output = FileManager.default.temporaryDirectory.appendingPathComponent("omnirun-context-\(UUID().uuidString).tar")
                defer { try? FileManager.default.removeItem(at: output) }
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/tar")
                process.arguments = ["-c", "-f", output.path, "-C", directory, "--exclude-vcs", "--owner=0", "--group=0", "."]
                try process.run()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else { throw ValidationError("tar of \(directory) failed") }
                return try Data(contentsOf: output)
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the templates you can use.")
            @OptionGroup var server: Server

            func run() async throws {
                let reply = try await server.client().request("GET", "/templates")
                guard reply.status == 200 else { throw ValidationError("\(reply.status): \(reply.text)") }
                func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
                say(pad("template", 22) + pad("status", 11) + pad("cpu", 5) + pad("memory", 8) + pad("disk", 8) + "description")
                for item in reply.array {
                    say(
                        pad(item["templateID"] as? String ?? "", 22) + pad(item["status"] as? String ?? "", 11)
                            + pad("\(item["cpuCount"] as? Int ?? 0)", 5) + pad("\(item["memoryMB"] as? Int ?? 0)", 8)
                            + pad("\(item["diskMB"] as? Int ?? 0)", 8) + (item["description"] as? String ?? ""))
                }
            }
        }

        struct Delete: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Delete one of your templates.")
            @Argument var name: String
            @OptionGroup var server: Server

            func run() async throws {
                let reply = try await server.client().request("DELETE", "/templates/\(name)")
                guard reply.status == 204 || reply.status == 200 else {
                    throw ValidationError("\(reply.status): \(reply.object["message"] as? String ?? reply.text)")
                }
                say("deleted \(name)")
            }
        }
    }
}

/// The few HTTP calls `omnirun template` makes.
struct TemplateClient {
    let base: URL
    let key: String

    /// Follows a server-sent event stream; `onEvent` gets each event's JSON object and
    /// returns true to stop.
    func events(_ path: String, onEvent: ([String: Any]) throws -> Bool) async throws {
        var request = HTTPClientRequest(url: base.appendingPathComponent(String(path.dropFirst())).absoluteString)
        request.headers.add(name: "X-API-Key", value: key)
        request.headers.add(name: "Accept", value: "text/event-stream")
        let response = try await HTTPClient.shared.execute(request, timeout: .hours(24))
        guard response.status.code == 200 else {
            let body = try await response.body.collect(upTo: 1 << 20)
            throw ValidationError("\(response.status.code): \(String(buffer: body))")
        }
        var pending: [UInt8] = []
        for try await chunk in response.body {
            pending += chunk.readableBytesView
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                guard line.hasPrefix("data: "),
                    let event = (try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8))) as? [String: Any]
                else { continue }
                if try onEvent(event) { return }
            }
            guard pending.count <= 1 << 20 else { throw ValidationError("an event of the build's stream is larger than 1 MiB") }
        }
    }

    struct Reply {
        var status: Int
        var data: Data
        var text: String { String(decoding: data, as: UTF8.self) }
        var object: [String: Any] { (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:] }
        var array: [[String: Any]] { (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? [] }
    }

    func request(_ method: String, _ path: String, body: Data? = nil, contentType: String? = nil) async throws -> Reply {
        var request = URLRequest(url: base.appendingPathComponent(String(path.dropFirst())))
        request.httpMethod = method
        request.timeoutInterval = 600
        request.setValue(key, forHTTPHeaderField: "X-API-Key")
        if let body {
            request.httpBody = body
            request.setValue(contentType, forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return Reply(status: (response as? HTTPURLResponse)?.statusCode ?? 0, data: data)
    }

    func multipart(_ path: String, fields: [(String, String)], file: (name: String, data: Data)) async throws -> Reply {
        let boundary = "omnirun-\(UUID().uuidString)"
        var body = Data()
        for (name, value) in fields {
            body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        body += Data(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(file.name)\"; filename=\"context.tar\"\r\nContent-Type: application/x-tar\r\n\r\n".utf8)
        body += file.data
        body += Data("\r\n--\(boundary)--\r\n".utf8)
        return try await request("POST", path, body: body, contentType: "multipart/form-data; boundary=\(boundary)")
    }
}
