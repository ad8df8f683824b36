import Foundation
import SandboxRuntime

#if canImport(Glibc)
import Glibc
#endif

/// A real `omnirun serve` process for end-to-end tests: its own data directory and
/// port, the shared snapshot directory, and cleanup that leaves no VM behind.
public final class TestServer: @unchecked Sendable {
    public let dataDirectory: String
    public let port: Int
    public private(set) var process: Process
    public let environment: [String: String]
    public let logLevel: String
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// The preview gateway's port (each server gets a free one).
    public var previewPort: Int { Int(environment["OMNIRUN_PREVIEW_PORT"] ?? "") ?? 0 }

    public static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    public static var binary: String {
        ProcessInfo.processInfo.environment["OMNIRUN_BIN"] ?? packageRoot + "/.build/debug/omnirun"
    }

    private init(dataDirectory: String, port: Int, process: Process, environment: [String: String], logLevel: String) {
        self.dataDirectory = dataDirectory
        self.port = port
        self.process = process
        self.environment = environment
        self.logLevel = logLevel
    }

    /// Starts a server and waits until `/status` answers.
    public static func start(
        name: String, environment: [String: String] = [:], logLevel: String = "warning"
    ) async throws -> TestServer {
        let dataDirectory = TestRuntime.dataDirectory + "/servers/\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dataDirectory)
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let port = try freePort()
        var env = ProcessInfo.processInfo.environment
        env["OMNIRUN_SNAPSHOT_DIR"] = TestRuntime.snapshotDirectory
        env["OMNIRUN_EXIT_WITH_PARENT"] = "1"
        env["OMNIRUN_PREVIEW_PORT"] = "\(try freePort())"
        for (key, value) in environment { env[key] = value }
        let process = try launch(dataDirectory: dataDirectory, port: port, environment: env, logLevel: logLevel)
        let server = TestServer(dataDirectory: dataDirectory, port: port, process: process, environment: env, logLevel: logLevel)
        try await server.waitUntilReady()
        return server
    }

    private static func launch(dataDirectory: String, port: Int, environment: [String: String], logLevel: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--data-dir", dataDirectory, "--port", "\(port)", "--warm-pool", "0", "--log-level", logLevel]
        process.environment = environment
        _ = FileManager.default.createFile(atPath: dataDirectory + "/server.log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/server.log"))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        return process
    }

    public func waitUntilReady(timeout: TimeInterval = 300) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        let client = HTTPTestClient(baseURL: baseURL, apiKey: nil)
        while Date() < deadline {
            if !process.isRunning {
                throw TestSetupError("omnirun serve exited: \(log())")
            }
            if let reply = try? await client.request("GET", "/status", timeout: 2), reply.status == 200 { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestSetupError("omnirun serve did not start: \(log())")
    }

    public var ownerKey: String {
        (try? String(contentsOfFile: dataDirectory + "/owner.key", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    public func client(key: String? = nil) -> HTTPTestClient {
        HTTPTestClient(baseURL: baseURL, apiKey: key ?? ownerKey)
    }

    /// A key for another account, made with `omnirun key create` on the same store.
    public func createKey(email: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["key", "create", "--email", email, "--data-dir", dataDirectory]
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public func log() -> String {
        String(fullLog().suffix(4000))
    }

    public func fullLog() -> String {
        (try? String(contentsOfFile: dataDirectory + "/server.log", encoding: .utf8)) ?? ""
    }

    /// kill -9, as a crash would.
    public func crash() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Starts the server again on the same data directory and port (and waits until it
    /// answers, unless `waitUntilReady` is false: a test that crashes it mid-recovery).
    public func restart(waitUntilReady wait: Bool = true) async throws {
        process = try Self.launch(dataDirectory: dataDirectory, port: port, environment: environment, logLevel: logLevel)
        if wait { try await waitUntilReady() }
    }

    /// Stops the server and every VM it left running (sandboxes survive a server
    /// stop by design), then removes its data directory.
    public func shutdown() async {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        for pid in hostProcesses(matching: dataDirectory + "/sandboxes/") + hostProcesses(matching: dataDirectory + "/builds/") {
            kill(pid, SIGKILL)
        }
        try? await Task.sleep(for: .milliseconds(300))
        removeNetwork()
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    /// The namespace prefix and host table of this server's sandboxes with internet access.
    public var networkTag: String { HostNetwork.tag(forDataDirectory: dataDirectory) }

    /// Removes the namespaces (and with them the devices) and the host table the server made.
    public func removeNetwork() {
        let prefix = HostNetwork.namespacePrefix(tag: networkTag)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [] where name.hasPrefix(prefix) {
            runTool(["/usr/sbin/ip", "-n", name, "link", "del", "eth0"])
            runTool(["/usr/sbin/ip", "netns", "del", name])
        }
        runTool(["/usr/sbin/nft", "delete", "table", "inet", HostNetwork.hostTableName(tag: networkTag)])
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw TestSetupError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Runs a host tool and returns its standard output (tests' network checks and cleanup).
@discardableResult
public func runTool(_ argv: [String]) -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0])
    process.arguments = Array(argv.dropFirst())
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return "" }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
