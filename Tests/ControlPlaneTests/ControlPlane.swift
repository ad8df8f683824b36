import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import OmniRunCore
import OmniRunServer
import OmniRunStore
import SandboxRuntime
import TestSupport
import Testing

/// The whole control plane in this process, on machines that are fake guests in memory
/// (`MemoryMachineDriver`): the runtime, a SQLite store in a temporary folder and the
/// app's router, called without a socket (HummingbirdTesting's `.router`). The app's
/// services run as in `omnirun serve` (the reaper, the webhook dispatcher). A template
/// `playground` (alias `python-3.11`, the create default) is a manifest over dummy files.
struct ControlPlane: Sendable {
    let client: any TestClientProtocol
    let ownerKey: String
    let driver: MemoryMachineDriver
    let runtime: SandboxRuntime
    let database: any SQLDatabase
    let configuration: ServerConfiguration

    /// Builds a fresh control plane, runs `body` against it, and removes everything after.
    /// `configure` changes the server's settings (the defaults here: a 50 ms reaper, no
    /// preview listener, no metrics sampling, webhooks allowed to loopback).
    static func run(
        _ configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (ControlPlane) async throws -> Void
    ) async throws {
        let root = FileManager.default.temporaryDirectory.path + "/omnirun-cp-" + UUID().uuidString.prefix(8).lowercased()
        let data = root + "/data"
        let cache = root + "/cache"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeTemplate("playground", cache: cache)

        var logger = Logger(label: "omnirun.control-plane-test")
        logger.logLevel = .error
        let driver = MemoryMachineDriver()
        var runtimeConfiguration = SandboxRuntime.Configuration(dataDirectory: data)
        // Fake guests answer at once, unless the suite's load starves this process: a short
        // timeout then fails creates that nothing is wrong with.
        runtimeConfiguration.agentTimeout = .seconds(60)
        runtimeConfiguration.warmUp = [:]
        var network = HostNetwork.Configuration(dataDirectory: data)
        network.enabled = false
        runtimeConfiguration.network = network
        let runtime = SandboxRuntime(
            driver: driver, catalog: ImageCatalog(cacheDirectory: cache, extraManifestDirectories: [data + "/templates/manifests"]),
            configuration: runtimeConfiguration, logger: logger)
        let database = try await Store.open(url: "sqlite://\(data)/omnirun.db", logger: logger)

        var configuration = ServerConfiguration(dataDirectory: data)
        configuration.preview.port = -1
        configuration.preview.publicPort = 8081
        configuration.metricsInterval = nil
        configuration.reaperInterval = .milliseconds(50)
        configuration.webhookAllowLoopback = true
        configuration.webhookRetryBase = .seconds(60)
        configuration.buildCertificates = nil
        configure(&configuration)
        let settings = configuration
        do {
            let (app, bootstrap) = try await OmniRunApp.build(
                configuration: settings, runtime: runtime, database: database, logger: logger)
            let key = try #require(bootstrap.ownerKey)
            try await app.test(.router) { client in
                try await body(
                    ControlPlane(
                        client: client, ownerKey: key, driver: driver, runtime: runtime, database: database, configuration: settings))
            }
        } catch {
            await runtime.destroyAll()
            await database.close()
            throw error
        }
        await runtime.destroyAll()
        await database.close()
    }

    /// A template manifest as `scripts/build-image.sh` writes it, over small dummy files.
    static func writeTemplate(_ name: String, cache: String) throws {
        let files = cache + "/files"
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: cache + "/images", withIntermediateDirectories: true)
        for file in ["vmlinux", "initrd.img", "rootfs.ext4"] {
            try Data("not a real \(file)\n".utf8).write(to: URL(fileURLWithPath: "\(files)/\(name)-\(file)"))
        }
        let manifest: [String: Any] = [
            "template": name, "kernel": "\(files)/\(name)-vmlinux", "initrd": "\(files)/\(name)-initrd.img",
            "rootfs": "\(files)/\(name)-rootfs.ext4", "vcpus": 1, "memoryMB": 256, "key": "fake-\(name)-v1",
            "description": "a fake \(name) for control-plane tests",
        ]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: "\(cache)/images/\(name).json"))
    }

    // MARK: calls

    /// One answer: its status and body.
    struct Reply: Sendable, CustomStringConvertible {
        var status: Int
        var body: [UInt8]

        var text: String { String(decoding: body, as: UTF8.self) }
        var description: String { "\(status) \(text)" }

        func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
            do {
                return try JSONDecoder().decode(type, from: Data(body))
            } catch {
                throw DecodeFailure(description: "answer \(self) is not a \(type): \(error)")
            }
        }
    }

    struct DecodeFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Calls the API as the owner (or with `key`); `json` is the request body.
    func call(_ method: HTTPRequest.Method, _ path: String, json: String? = nil, key: String? = nil) async throws -> Reply {
        var headers: HTTPFields = [:]
        headers[.init("X-API-Key")!] = key ?? ownerKey
        if json != nil { headers[.contentType] = "application/json" }
        let response = try await client.executeRequest(
            uri: path, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
        return Reply(status: Int(response.status.code), body: Array(response.body.readableBytesView))
    }

    /// Creates a sandbox and returns it (the create must answer 201).
    func createSandbox(_ json: String = "{}", key: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws
        -> WireSandbox
    {
        let reply = try await call(.post, "/sandboxes", json: json, key: key)
        try #require(reply.status == 201, "create answered \(reply)", sourceLocation: sourceLocation)
        return try reply.decode()
    }

    /// Runs a command in the foreground.
    func run(_ command: String, in sandbox: String, timeout: Int? = nil) async throws -> WireCommandResult {
        let body = timeout.map { #"{"command": \#(quoted(command)), "timeout": \#($0)}"# } ?? #"{"command": \#(quoted(command))}"#
        let reply = try await call(.post, "/sandboxes/\(sandbox)/commands", json: body)
        try #require(reply.status == 200, "command answered \(reply)")
        return try reply.decode()
    }

    func writeFile(_ path: String, _ content: String, in sandbox: String) async throws {
        let reply = try await call(
            .post, "/sandboxes/\(sandbox)/files", json: #"{"path": \#(quoted(path)), "content": \#(quoted(content))}"#)
        try #require(reply.status == 200, "file write answered \(reply)")
    }

    /// The file's text, or nil when the sandbox answers 404 for it.
    func readFile(_ path: String, in sandbox: String) async throws -> String? {
        let reply = try await call(.get, "/sandboxes/\(sandbox)/files?path=\(path)")
        if reply.status == 404 { return nil }
        try #require(reply.status == 200, "file read answered \(reply)")
        return try reply.decode(WireFileContent.self).content
    }

    /// The account's ended sandboxes, newest first.
    func history(key: String? = nil) async throws -> [WireHistoryItem] {
        let reply = try await call(.get, "/sandboxes/history", key: key)
        try #require(reply.status == 200, "history answered \(reply)")
        return try reply.decode()
    }

    /// The account's running and paused sandboxes (a list is no activity of any one of them).
    func list(key: String? = nil) async throws -> [WireSandbox] {
        let reply = try await call(.get, "/sandboxes", key: key)
        try #require(reply.status == 200, "list answered \(reply)")
        return try reply.decode()
    }

    /// A key of another account on this server.
    func createAccount(_ email: String) async throws -> String {
        try await OmniRunApp.createKey(email: email, name: "test", database: database, configuration: configuration)
    }

    func quoted(_ text: String) -> String {
        String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
    }
}

/// Waits until `condition` holds, checking every 20 ms; false if it never did within `timeout`.
func eventually(within timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

// MARK: the wire's shapes (docs/api.md)

struct WireSandbox: Decodable, Sendable {
    var sandboxID: String
    var templateID: String
    var state: String
    var startedAt: String
    var endAt: String?
    var metadata: [String: String]
    var cpuCount: Int
    var memoryMB: Int
    var pausedAt: String?
}

struct WireError: Decodable, Sendable {
    var error: String
    var message: String
}

struct WireHistoryItem: Decodable, Sendable {
    var sandboxID: String
    var templateID: String
    var status: String
    var endReason: String?
    var endedAt: String?
    var timeoutSeconds: Int64
}

struct WireCommandResult: Decodable, Sendable {
    var stdout: String
    var stderr: String
    var exit_code: Int32
}

struct WireFileContent: Decodable, Sendable {
    var content: String
    var path: String
}

struct WireStatus: Decodable, Sendable {
    var status: String
}

struct WireForked: Decodable, Sendable {
    var sandboxes: [WireSandbox]
}

struct WireExposure: Decodable, Sendable {
    var id: String
    var sandboxId: String
    var port: Int
    var url: String
    var status: String
    var sandboxStoppedAt: String?
}

struct WireWebhook: Decodable, Sendable {
    var id: String
    var url: String
    var events: [String]
    var secret: String
}

struct WireDelivery: Decodable, Sendable {
    var id: String
    var event: String
    var sandboxID: String?
    var status: String
}
