import ArgumentParser
import Foundation

/// A failure `omni` reports on stderr, with an exit code that says what kind it was.
public struct CLIError: Error, CustomStringConvertible {
    public var message: String
    public var exitCode: Int32

    public init(_ message: String, exitCode: Int32 = ExitStatus.failure) {
        self.message = message
        self.exitCode = exitCode
    }

    public var description: String { message }
}

/// The exit codes of `omni` (documented in `omni --help` and the README).
public enum ExitStatus {
    public static let failure: Int32 = 1        // any other failure (network, bad answer)
    public static let notFound: Int32 = 3       // 404: no such sandbox, file, credential
    public static let auth: Int32 = 4           // 401/403, or no credentials
    public static let limit: Int32 = 5          // 429 (concurrent sandboxes, rate) or 402 (LLM spend cap)
    public static let notAvailable: Int32 = 6   // 501: the server does not offer this yet
    public static let server: Int32 = 7         // 5xx: the server or a sandbox failed
    public static let invalid: Int32 = 8        // 400/409/413: the server refused the input

    static func forHTTP(_ status: Int) -> Int32 {
        switch status {
        case 404: notFound
        case 401, 403: auth
        case 402, 429: limit
        case 501: notAvailable
        case 500...599: server
        case 400...499: invalid
        default: failure
        }
    }
}

/// Runs a command's body; a `CLIError` is printed to stderr and becomes its exit code.
func reporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CLIError {
        FileHandle.standardError.write(Data("omni: \(error.message)\n".utf8))
        throw ExitCode(error.exitCode)
    }
}
