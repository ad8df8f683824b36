import Foundation
import TestSupport

/// The Chromium drivers of `scripts/testdata` (the desktop's live view, the web console),
/// run off the cooperative pool: their exit status and what they printed.
enum ChromiumScript {
    static func run(_ script: String, _ arguments: [String]) async throws -> (Int32, String) {
        try await withCheckedThrowingContinuation { continuation in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = [TestServer.packageRoot + "/scripts/testdata/" + script] + arguments
            let out = Pipe()
            process.standardOutput = out
            process.terminationHandler = { process in
                let data = out.fileHandleForReading.readDataToEndOfFile()
                continuation.resume(returning: (process.terminationStatus, String(decoding: data, as: UTF8.self)))
            }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
    }
}
