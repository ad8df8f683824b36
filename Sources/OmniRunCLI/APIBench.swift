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
    let warmPool: Int
    let template: String
    private(set) var baseURL = ""
    private(set) var key = ""
    private var server: Process?
    private var dataDirectory = ""

    init(executable: String, snapshotDirectory: String, warmPool: Int, template: String) {
        self.executable = executable
        self.snapshotDirectory = snapshotDirectory
        self.warmPool = warmPool
        self.template = template
    }

    mutating func start() async throws {
        dataDirectory = NSTemporaryDirectory() + "omnirun-bench-\(getpid())-\(warmPool)"
        try? FileManager.default.removeItem(atPath: dataDirectory)
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let port = 20000 + Int(getpid() % 20000) + warmPool
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["serve", "--data-dir", dataDirectory, "--port", "\(port)", "--warm-pool", "\(warmPool)", "--prepare", template]
        var env = Foundation.ProcessInfo.processInfo.environment
        env["OMNIRUN_SNAPSHOT_DIR"] = snapshotDirectory
        env["OMNIRUN_EXIT_WITH_PARENT"] = "1"
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

    func stop() {
        if let server, server.isRunning {
            kill(server.processIdentifier, SIGTERM)
            server.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    func request(_ method: String, _ path: String, json: [String: Any]? = nil) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        request.timeoutInterval = 120
        if !key.isEmpty { request.setValue(key, forHTTPHeaderField: "X-API-Key") }
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
    }

    /// Waits until the server's warm pool is full again (between timed creates).
    func waitForPool() async throws {
        guard warmPool > 0 else { return }
        for _ in 0..<600 {
            let (_, status) = try await request("GET", "/status")
            if ((status["warm_pool"] as? [String: Any])?[template] as? Int ?? 0) >= warmPool { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// ms from POST /sandboxes to the output of `echo ok`, and the whole create → run → delete.
    func createRunDelete() async throws -> (Double, Double) {
        let started = ContinuousClock.now
        let (status, created) = try await request("POST", "/sandboxes", json: ["template": template, "timeout": 120])
        guard status == 201, let id = created["sandboxID"] as? String else { throw BenchError("create answered \(status)") }
        let (_, run) = try await request("POST", "/sandboxes/\(id)/commands", json: ["command": "echo ok"])
        let first = (ContinuousClock.now - started).milliseconds
        guard run["stdout"] as? String == "ok\n" else { throw BenchError("unexpected output \(run)") }
        _ = try await request("DELETE", "/sandboxes/\(id)")
        return (first, (ContinuousClock.now - started).milliseconds)
    }

    /// ms of `true` through POST /commands on a running sandbox (after one warm-up).
    func commandRoundTrips(_ count: Int) async throws -> [Double] {
        let (_, created) = try await request("POST", "/sandboxes", json: ["template": template, "timeout": 600])
        guard let id = created["sandboxID"] as? String else { throw BenchError("create failed") }
        defer { Task { [self] in _ = try? await request("DELETE", "/sandboxes/\(id)") } }
        _ = try await request("POST", "/sandboxes/\(id)/commands", json: ["command": "true"])
        var samples: [Double] = []
        for _ in 0..<count {
            let started = ContinuousClock.now
            _ = try await request("POST", "/sandboxes/\(id)/commands", json: ["command": "true"])
            samples.append((ContinuousClock.now - started).milliseconds)
        }
        _ = try await request("DELETE", "/sandboxes/\(id)")
        return samples
    }
}
