import ArgumentParser
import Foundation

/// Options every command that talks to a server shares. The URL and key come from the
/// flags, else `OMNIRUN_API_URL`/`OMNIRUN_API_KEY`, else the credentials file of `omni auth`.
struct Connection: ParsableArguments {
    @Option(name: .customLong("api-url"), help: "Server URL ($OMNIRUN_API_URL, else the saved one, else http://127.0.0.1:8080).")
    var apiUrl: String?

    @Option(name: .customLong("api-key"), help: "API key ($OMNIRUN_API_KEY, else the saved one).")
    var apiKey: String?

    @Flag(help: "Print JSON (for scripts) instead of text.")
    var json = false

    @Option(name: .customLong("request-timeout"),
            help: "Milliseconds each request (not a stream) may take ($OMNIRUN_REQUEST_TIMEOUT; default: the command's own, 600 s for most).")
    var requestTimeout: Int64?

    /// `--request-timeout`, else `OMNIRUN_REQUEST_TIMEOUT`; must be positive.
    func requestTimeoutMilliseconds() throws -> Int64? {
        var value = requestTimeout
        if value == nil, let text = ProcessInfo.processInfo.environment["OMNIRUN_REQUEST_TIMEOUT"], !text.isEmpty {
            guard let number = Int64(text) else {
                throw CLIError("OMNIRUN_REQUEST_TIMEOUT must be milliseconds, not '\(text.prefix(40))'", exitCode: 64)
            }
            value = number
        }
        guard let value else { return nil }
        guard value > 0, value <= 86_400_000 else {
            throw CLIError("--request-timeout takes milliseconds from 1 to 86400000, not \(value)", exitCode: 64)
        }
        return value
    }

    static let defaultURL = "http://127.0.0.1:8080"

    var resolvedURL: String {
        let env = ProcessInfo.processInfo.environment
        return apiUrl ?? env["OMNIRUN_API_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? Credentials.load()?.apiUrl ?? Self.defaultURL
    }

    /// A client that needs a key (every route but sign-in and status).
    func client() throws -> APIClient {
        let timeout = try requestTimeoutMilliseconds()
        let env = ProcessInfo.processInfo.environment
        guard let key = apiKey ?? env["OMNIRUN_API_KEY"].flatMap({ $0.isEmpty ? nil : $0 }) ?? Credentials.load()?.apiKey else {
            throw CLIError("not signed in: run `omni auth login` (or `omni auth init`, or `omni auth init --api-key KEY`, or set OMNIRUN_API_KEY)",
                           exitCode: ExitStatus.auth)
        }
        return APIClient(baseURL: resolvedURL, apiKey: key, requestTimeoutMilliseconds: timeout)
    }

    func anonymousClient() throws -> APIClient {
        APIClient(baseURL: resolvedURL, apiKey: "", requestTimeoutMilliseconds: try requestTimeoutMilliseconds())
    }

    /// Prints `value` as JSON with `--json`, else the human text.
    func emit(_ value: Any, human: () -> String) {
        if json {
            let data = (try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed])) ?? Data("null".utf8)
            say(String(decoding: data, as: UTF8.self))
        } else {
            let text = human()
            if !text.isEmpty { say(text) }
        }
    }
}

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func note(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Rows as aligned columns.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { $0.offset == row.count - 1 ? $0.element : $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}

func string(_ value: Any?) -> String {
    switch value {
    case let text as String: text
    case let number as NSNumber: number.stringValue
    case nil, is NSNull: ""
    case let other?: "\(other)"
    }
}
