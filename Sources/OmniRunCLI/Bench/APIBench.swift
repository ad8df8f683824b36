import Foundation
import SandboxRuntime
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Measures the HTTP API from a client process, against an `omnirun serve` child
/// that shares this machine's snapshots.
struct APIBench {
    let executable: String
    let snapshotDirectory: String
    /// The server's `--warm-pool`: a size or `auto[:…]`.
    let warmPool: String
    let template: String
    /// Folder under which the server keeps its data (its sandboxes' machines live there).
    let parentDirectory: String
    private(set) var baseURL = ""
    private(set) var key = ""
    /// The server's preview gateway port.
    private(set) var previewPort = 0
    private var server: Process?
    private var dataDirectory = ""
    /// One client with room for a burst's connections at once.
    let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 128
        configuration.timeoutIntervalForRequest = 300
        return URLSession(configuration: configuration)
    }()

    init(executable: String, snapshotDirectory: String, warmPool: Int, template: String, parentDirectory: String) {
        self.init(executable: executable, snapshotDirectory: snapshotDirectory, pool: "\(warmPool)", template: template, parentDirectory: parentDirectory)
    }

    init(executable: String, snapshotDirectory: String, pool: String, template: String, parentDirectory: String) {
        self.parentDirectory = parentDirectory
        self.executable = executable
        self.snapshotDirectory = snapshotDirectory
        self.warmPool = pool
        self.template = template
    }

    var serverPID: Int32? { server?.processIdentifier }
    /// The server's data directory (its network objects are named after it).
    var serverDataDirectory: String { dataDirectory }

    mutating func start() async throws {
        let tag = warmPool.prefix { $0.isLetter || $0.isNumber }
        dataDirectory = parentDirectory + "/srv\(tag)-" + String(UInt16.random(in: 0...UInt16.max), radix: 16)
        try? FileManager.default.removeItem(atPath: dataDirectory)
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let port = 20000 + Int(getpid() % 20000) + (Int(warmPool).map { min($0, 999) } ?? 1000 + Int.random(in: 0..<500))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["serve", "--data-dir", dataDirectory, "--port", "\(port)", "--warm-pool", "\(warmPool)", "--prepare", template]
        var env = Foundation.ProcessInfo.processInfo.environment
        env["OMNIRUN_SNAPSHOT_DIR"] = snapshotDirectory
        env["OMNIRUN_EXIT_WITH_PARENT"] = "1"
        previewPort = port + 20000
        env["OMNIRUN_PREVIEW_PORT"] = "\(previewPort)"
        // Limits raised for the run (bursts).
        env["OMNIRUN_CONCURRENT_LIMIT"] = "1000"
        env["OMNIRUN_MAX_SANDBOXES"] = "1000"
        process.environment = env
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        server = process
        baseURL = "http://127.0.0.1:\(port)"
        for _ in 0..<1200 {
            if let (status, _) = try? await request("GET", "/status"), status == 200 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        key = (try String(contentsOfFile: dataDirectory + "/owner.key", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the server. Its sandboxes would outlive it (by design), so the machines
    /// it started and did not end (a run that failed half-way) are ended by pid.
    func stop() {
        if let server, server.isRunning {
            let machines = HostStats.children(of: server.processIdentifier)
            kill(server.processIdentifier, SIGTERM)
            server.waitUntilExit()
            for pid in machines where kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    func request(_ method: String, _ path: String, json: Any? = nil) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        if !key.isEmpty { request.setValue(key, forHTTPHeaderField: "X-API-Key") }
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await session.data(for: request)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
    }

    /// Waits until the server's warm pool holds `size` machines (default: what it aims for now).
    func waitForPool(size: Int? = nil, timeout: Duration = .seconds(600)) async throws {
        guard warmPool != "0" else { return }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (ready, target) = try await pool()
            if ready >= (size ?? target) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("the warm pool did not fill to \(size.map { "\($0)" } ?? "its target") within \(timeout)")
    }

    /// The server's warm pool for the template: machines ready, and its target now.
    func pool() async throws -> (ready: Int, target: Int) {
        let (_, status) = try await request("GET", "/status")
        let ready = (status["warm_pool"] as? [String: Any])?[template] as? Int ?? 0
        let target = (status["warm_pool_target"] as? [String: Any])?[template] as? Int ?? 0
        return (ready, target)
    }

    struct Timing {
        /// POST /sandboxes answered.
        var create: Double
        /// Output of `echo ok` received.
        var firstOutput: Double
        var id: String
    }

    /// Create, then `echo ok`; ms since the create was sent. The caller deletes.
    func createAndRun() async throws -> Timing {
        let started = ContinuousClock.now
        let (status, created) = try await request("POST", "/sandboxes", json: ["template": template, "timeout": 300])
        guard status == 201, let id = created["sandboxID"] as? String else { throw BenchError("create answered \(status): \(created)") }
        let create = (ContinuousClock.now - started).milliseconds
        let (_, run) = try await request("POST", "/sandboxes/\(id)/commands", json: ["command": "echo ok"])
        let first = (ContinuousClock.now - started).milliseconds
        guard run["stdout"] as? String == "ok\n" else { throw BenchError("unexpected output \(run)") }
        return Timing(create: create, firstOutput: first, id: id)
    }

    /// Create → `echo ok` → delete: (timing, ms for the whole).
    func createRunDelete() async throws -> (Timing, Double) {
        let started = ContinuousClock.now
        let timing = try await createAndRun()
        _ = try await request("DELETE", "/sandboxes/\(timing.id)")
        return (timing, (ContinuousClock.now - started).milliseconds)
    }

    /// Round trips of `command` through POST /commands on one running sandbox (after a
    /// warm-up), with the guest's own spawn→exit time when it reports one.
    func commandRoundTrips(_ count: Int, command: String) async throws -> [Double] {
        let (_, created) = try await request("POST", "/sandboxes", json: ["template": template, "timeout": 600])
        guard let id = created["sandboxID"] as? String else { throw BenchError("create failed") }
        defer { Task { [self] in _ = try? await request("DELETE", "/sandboxes/\(id)") } }
        _ = try await request("POST", "/sandboxes/\(id)/commands", json: ["command": command])
        var samples: [Double] = []
        for _ in 0..<count {
            let started = ContinuousClock.now
            let (status, _) = try await request("POST", "/sandboxes/\(id)/commands", json: ["command": command])
            guard status == 200 else { throw BenchError("command answered \(status)") }
            samples.append((ContinuousClock.now - started).milliseconds)
        }
        _ = try await request("DELETE", "/sandboxes/\(id)")
        return samples
    }
}
