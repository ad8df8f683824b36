import ArgumentParser
import NIOHTTP1
import Foundation

/// `omni sandbox history`: sandboxes that have ended, newest first.
struct SandboxHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "List your past sandboxes, newest first.")

    @OptionGroup var connection: Connection

    @Option(help: "How many to show (1-100).")
    var limit = 20

    @Option(help: "How many of the newest to skip (for paging).")
    var offset = 0

    func validate() throws {
        guard (1...100).contains(limit) else { throw ValidationError("--limit must be from 1 to 100") }
        guard offset >= 0 else { throw ValidationError("--offset cannot be negative") }
    }

    func run() async throws {
        try await reporting {
            let items = try await connection.client().call(
                .GET, "/sandboxes/history", query: [("limit", String(limit)), ("offset", String(offset))]).array
            connection.emit(items) {
                items.isEmpty ? "No past sandboxes."
                    : table(["ID", "TEMPLATE", "ENDED", "REASON", "SECONDS"], items.map {
                        [string($0["sandboxID"]), string($0["templateID"]), string($0["endedAt"]), string($0["endReason"]),
                         ($0["durationSeconds"] as? Double).map { String(format: "%.1f", $0) } ?? ""]
                    })
            }
        }
    }
}
