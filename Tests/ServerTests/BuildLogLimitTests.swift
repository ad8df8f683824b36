import Foundation
import Testing
import TestSupport

/// A build whose steps print far more than a build log keeps (4 MiB): the log in memory,
/// in its file and in its stream stays a ring of its last 4 MiB and says it was cut; the
/// build itself finishes (or fails) as it would have.
extension CustomTemplateTests {
    static let logCap = 4 << 20

    @Test func aBuildThatPrintsFarMoreThanItsLogKeepsStaysBounded() async throws {
        let (server, client) = try await Self.client("loud")
        let watch = ServerWatch(server)
        // 24 MiB in lines of 100 bytes, then 8 MiB without a single line break.
        let loud = """
            FROM debian:bookworm
            RUN head -c 25165824 /dev/zero | tr '\\0' 'x' | fold -w 99 && echo the loud step ends here
            RUN head -c 8388608 /dev/zero | tr '\\0' 'y' && echo && echo the quiet step ends here
            """
        let name = "loud-\(UUID().uuidString.prefix(6).lowercased())"
        let built = try await Self.build(client, name: name, dockerfile: loud, settings: ["startCmd": NSNull(), "readyCmd": NSNull()])
        let logs = Self.logs(built)
        #expect(built["status"] as? String == "ready", "\(built["error"] ?? "")\n\(logs.suffix(5))")
        #expect(logs.first?.hasPrefix("[log truncated: ") == true, "\(logs.first?.prefix(200) ?? "")")
        #expect(logs.contains("  the quiet step ends here"), "\(logs.suffix(5))")
        #expect(logs.contains { $0.contains("[line cut: ") })
        let kept = logs.reduce(0) { $0 + $1.utf8.count + 1 }
        #expect(kept <= Self.logCap + (64 << 10), "the log keeps \(kept) bytes")
        let buildID = built["buildID"] as? String ?? ""
        let file = server.dataDirectory + "/templates/logs/\(buildID).log"
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? -1
        #expect(fileSize > 0 && fileSize <= Self.logCap + (64 << 10), "the log file holds \(fileSize) bytes")
        // The stream replays the same ring and ends with the outcome.
        let events = try await client.events("/templates/\(name)/builds/\(buildID)")
        #expect(events.first?["line"] as? String == logs.first)
        // Each kept line once: as a `log` event, or as a `step` event for the lines that tell a step.
        #expect(events.filter { ["log", "step"].contains($0["type"] as? String ?? "") }.count == logs.count)
        #expect(events.last?["status"] as? String == "ready")

        // A loud step that fails: the build fails cleanly, with its exit code and the log's tail.
        let failing = "FROM debian:bookworm\nRUN head -c 12582912 /dev/zero | tr '\\0' 'z' | fold -w 99; echo giving up; exit 3\n"
        let failedName = "loud-fail-\(UUID().uuidString.prefix(6).lowercased())"
        let failed = try await Self.build(
            client, name: failedName, dockerfile: failing, settings: ["startCmd": NSNull(), "readyCmd": NSNull()])
        #expect(failed["status"] as? String == "failed")
        #expect((failed["error"] as? String ?? "").contains("exit code 3"), "\(failed["error"] ?? "")")
        #expect((failed["error"] as? String ?? "").contains("giving up"))
        let failedLogs = Self.logs(failed)
        #expect(failedLogs.first?.hasPrefix("[log truncated: ") == true)
        #expect(failedLogs.reduce(0) { $0 + $1.utf8.count + 1 } <= Self.logCap + (64 << 10))
        let figures = await watch.finish()
        // The server holds the ring, not the output: its memory grows by far less than 44 MiB.
        #expect(figures.peak.rssKiB - figures.before.rssKiB < 160 << 10, "RSS \(figures.before) → \(figures.peak)")
        ServerWatch.record(
            "template builds printing 32 MiB (ready) and 12 MiB (exit 3) into a 4 MiB log", figures,
            outcome: "bounded: logs kept \(kept) and \(failedLogs.reduce(0) { $0 + $1.utf8.count + 1 }) bytes, file \(fileSize) bytes, marked truncated")
        for template in [name, failedName] { _ = try? await client.delete("/templates/\(template)") }
    }
}
