import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox list`: the account's running sandboxes (every page).
struct SandboxList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List your sandboxes.")

    @OptionGroup var connection: Connection

    @Option(help: "Only sandboxes in this state.")
    var state: String?

    @Option(help: "Only sandboxes with this metadata, key=value (repeatable).")
    var metadata: [String] = []

    @Option(help: "At most this many sandboxes (default: all).")
    var limit: Int?

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        try await reporting {
            let client = try connection.client()
            var query: [(String, String)] = [("limit", String(min(limit ?? 100, 100)))]
            if let state { query.append(("state", state)) }
            if !metadata.isEmpty {
                query.append(("metadata", try pairs(metadata, "--metadata").sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")))
            }
            var all: [[String: Any]] = []
            var token: String?
            repeat {
                let reply = try await client.call(.GET, "/sandboxes", query: query + (token.map { [("next_token", $0)] } ?? []))
                all += reply.array
                token = reply.headers.first(name: "x-next-token").flatMap { $0.isEmpty ? nil : $0 }
            } while token != nil && all.count < (limit ?? Int.max)
            if let limit, all.count > limit { all.removeLast(all.count - limit) }
            connection.emit(all) {
                all.isEmpty ? "No sandboxes."
                    : table(["ID", "TEMPLATE", "STATE", "STARTED", "ENDS"], all.map {
                        [string($0["sandboxID"]), string($0["templateID"]), string($0["state"]), string($0["startedAt"]), string($0["endAt"])]
                    })
            }
        }
    }
}
