import Foundation
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Runs the host's network tools (`ip`, `nft`, `nsenter`) and reports their errors.
enum NetworkCommand {
    /// Runs `argv` with `input` on its standard input; returns its standard output.
    @discardableResult
    static func run(_ argv: [String], input: String? = nil) async throws -> String {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
            // Blocking reads and waits belong on a thread of their own, not the concurrency pool.
            DispatchQueue.global().async {
                do {
                    continuation.resume(returning: try runBlocking(argv, input: input))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    private static func runBlocking(_ argv: [String], input: String?) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let output = Pipe()
        let errors = Pipe()
        let stdin = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        do {
            try process.run()
        } catch {
            throw OmniRunError(.unavailable, "cannot run \(argv[0]): \(error)")
        }
        if let input {
            // A tool that exits before reading its input must not take the server down.
            signal(SIGPIPE, SIG_IGN)
            try? stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
            try? stdin.fileHandleForWriting.close()
        }
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw OmniRunError(
                .internalError,
                "\(argv.prefix(4).joined(separator: " ")) failed (\(process.terminationStatus)): \(String(decoding: err, as: UTF8.self).prefix(600))")
        }
        return String(decoding: out, as: UTF8.self)
    }
}
