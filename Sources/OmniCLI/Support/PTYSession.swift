import Foundation
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// An interactive terminal in a sandbox over the PTY API (polling): the local terminal in
/// raw mode, keys sent as typed, output polled and written as it comes, and the remote size
/// following the local one (SIGWINCH). Ends when the remote shell exits.
struct PTYSession {
    let client: APIClient
    let sandbox: String
    /// The shell's working directory (default: the user's home).
    var cwd: String? = nil

    /// Runs the session; `firstInput` is typed into the shell before any key (e.g. a command
    /// that starts an agent).
    func run(firstInput: String? = nil) async throws {
        let size = RawTerminal.size()
        var body: [String: Any] = ["cols": size.cols, "rows": size.rows]
        if let cwd { body["cwd"] = cwd }
        let created = try await client.call(.POST, "/sandboxes/\(sandbox)/pty", json: body).object
        guard let pid = created["pid"] as? Int else { throw CLIError("the server answered without a terminal pid") }
        let base = "/sandboxes/\(sandbox)/pty/\(pid)"
        let client = self.client
        if let firstInput { try await client.call(.POST, base + "/input", json: ["data": firstInput]) }
        let terminal = RawTerminal()
        terminal.enable()
        defer { terminal.restore() }
        let resizes = WindowChanges {
            let now = RawTerminal.size()
            Task { _ = try? await client.send(.POST, base + "/resize", json: ["cols": now.cols, "rows": now.rows]) }
        }
        defer { resizes.cancel() }

        let keys = Self.readStandardInput()
        let sender = Task {
            for await chunk in keys {
                _ = try? await client.send(.POST, base + "/input", json: ["data": String(decoding: chunk, as: UTF8.self)])
            }
        }
        defer { sender.cancel() }

        var idle = 0
        var checked = Date()
        while true {
            let output = try await client.call(.GET, base + "/read").object["data"] as? String ?? ""
            if !output.isEmpty {
                FileHandle.standardOutput.write(Data(output.utf8))
                idle = 0
                continue
            }
            idle += 1
            if Date().timeIntervalSince(checked) > 0.5 {
                checked = Date()
                let sessions = try await client.call(.GET, "/sandboxes/\(sandbox)/pty").array
                let session = sessions.first { ($0["pid"] as? Int) == pid }
                if session == nil || session?["running"] as? Bool == false {
                    let rest = try? await client.call(.GET, base + "/read").object["data"] as? String
                    if let rest, !rest.isEmpty { FileHandle.standardOutput.write(Data(rest.utf8)) }
                    break
                }
            }
            try await Task.sleep(for: .milliseconds(idle < 10 ? 20 : 80))
        }
        _ = try? await client.send(.DELETE, base)
    }

    /// Bytes typed on stdin, read by a thread of their own (a blocking read).
    static func readStandardInput() -> AsyncStream<[UInt8]> {
        AsyncStream { continuation in
            let thread = Thread {
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let capacity = buffer.count
                    let count = read(STDIN_FILENO, &buffer, capacity)
                    if count <= 0 { break }
                    continuation.yield(Array(buffer[0..<count]))
                }
                continuation.finish()
            }
            thread.start()
        }
    }
}
