import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A helper server a test starts itself (an SMTP server, an upstream stand-in): it
/// prints `ready PORT` once it listens, and `stop()` ends it by its pid.
public final class HelperProcess: @unchecked Sendable {
    public let process: Process
    public let port: Int
    public let logPath: String

    private init(process: Process, port: Int, logPath: String) {
        self.process = process
        self.port = port
        self.logPath = logPath
    }

    /// Starts `executable` and waits (up to `timeout` seconds) for its `ready PORT` line.
    public static func start(
        _ executable: String, _ arguments: [String], logPath: String, timeout: TimeInterval = 30
    ) async throws -> HelperProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try process.run()
        let reader = output.fileHandleForReading
        let port = try await withThrowingTaskGroup(of: Int?.self) { group in
            group.addTask {
                var text = ""
                while true {
                    let data = reader.availableData
                    if data.isEmpty { return nil }
                    text += String(decoding: data, as: UTF8.self)
                    if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }) {
                        return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: .seconds(timeout))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let port else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw TestSetupError("\(executable) \(arguments.joined(separator: " ")) did not start: \(log.suffix(2000))")
        }
        return HelperProcess(process: process, port: port, logPath: logPath)
    }

    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// Python interpreters for the helpers and clients the tests run.
public enum Python {
    /// The first Python 3 (on PATH, then Debian's) that can import `module`.
    public static func interpreter(importing module: String) throws -> String {
        var candidates: [String] = []
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            candidates.append("\(dir)/python3")
        }
        candidates.append("/usr/bin/python3")
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: candidate)
            process.arguments = ["-c", "import \(module)"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { continue }
            process.waitUntilExit()
            if process.terminationStatus == 0 { return candidate }
        }
        throw TestSetupError(
            "no python3 can import \(module): scripts/test.sh installs it (Debian's python3-aiosmtpd, PyPI's openai)")
    }

    /// Runs a script with arguments and environment; returns its standard output.
    public static func run(
        _ interpreter: String, _ script: String, _ arguments: [String], environment: [String: String] = [:]
    ) async throws -> String {
        try await offThePool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: interpreter)
            process.arguments = [script] + arguments
            var env = ProcessInfo.processInfo.environment
            for (key, value) in environment { env[key] = value }
            process.environment = env
            let output = Pipe()
            let errors = Pipe()
            process.standardOutput = output
            process.standardError = errors
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw TestSetupError("\(script) \(arguments) failed (\(process.terminationStatus)): \(errorText.suffix(3000))")
            }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// `scripts/testdata/<name>` in this checkout.
    public static func script(_ name: String) -> String {
        TestServer.packageRoot + "/scripts/testdata/" + name
    }
}

/// Runs blocking work (a child process waited for, a pipe read to its end) on a thread of
/// its own, not on Swift's cooperative pool: with two cores that pool has two threads, and
/// two tests blocking them stall every other test of the run (a `Task.detached` runs on
/// the same pool, so it does not help).
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}
