import Foundation
import Testing

@testable import TemplateBuilder

@Suite("Build logs: a bounded ring in memory, in its file and for its followers")
struct BuildLogTests {
    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("buildlog-\(UUID().uuidString).log").path
    }

    @Test func theRingKeepsTheLastBytesAndSaysWhatWasDropped() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = BuildLog(path: path, maxBytes: 64 << 10)
        for index in 0..<20_000 { log.append("line \(index) " + String(repeating: "x", count: 90)) }
        #expect(log.keptByteCount <= 64 << 10)
        let text = log.text
        #expect(text.first?.hasPrefix("[log truncated: ") == true, "\(text.first ?? "")")
        #expect(text.last?.hasPrefix("line 19999 ") == true)
        #expect(text.reduce(0) { $0 + $1.utf8.count + 1 } <= (64 << 10) + 200)
        // The file stops at the cap while the build runs and is the ring once it ends.
        let during = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
        #expect(during <= 64 << 10)
        log.finish(status: "ready", error: nil)
        let file = try String(contentsOfFile: path, encoding: .utf8)
        #expect(file.utf8.count <= (64 << 10) + 200)
        #expect(file.hasPrefix("[log truncated: "))
        #expect(file.hasSuffix("line 19999 " + String(repeating: "x", count: 90) + "\n"))
        // Read back for a finished build: the same ring.
        let loaded = BuildLog.load(path: path, status: "ready", error: nil, maxBytes: 64 << 10)
        #expect(loaded.text.last == text.last)
        #expect(loaded.isFinished)
    }

    @Test func emptyLinesAndEndlessLinesAreBoundedToo() {
        let log = BuildLog(path: nil, maxBytes: 8192)
        for _ in 0..<100_000 { log.append("\n") }
        #expect(log.keptByteCount <= 8192)
        #expect(log.text.count < 300)
        log.append(String(repeating: "y", count: 1 << 20))
        #expect(log.text.last?.hasSuffix("[line cut: 1048576 bytes]") == true)
        #expect(log.keptByteCount <= 8192 + BuildLog.maxLineBytes + 100)
    }

    @Test func aFileFromEarlierIsReadOnlyToItsLastBytes() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let lines = (0..<50_000).map { "old \($0)" }.joined(separator: "\n") + "\n"
        try lines.write(toFile: path, atomically: true, encoding: .utf8)
        let log = BuildLog.load(path: path, status: "failed", error: "boom", maxBytes: 16 << 10)
        #expect(log.text.last == "old 49999")
        #expect(log.text.reduce(0) { $0 + $1.utf8.count + 1 } <= (16 << 10) + 200)
        #expect(!(log.text.dropFirst().first ?? "").isEmpty)
    }

    @Test func followersReadAtTheirOwnPaceAndAreToldWhatTheyMissed() async throws {
        let log = BuildLog(path: nil, maxBytes: 4096)
        log.append("first")
        var early = log.follow().makeAsyncIterator()
        #expect(await early.next() == .line("first"))
        // The early follower does not read while 1000 lines go by: the ring moves on.
        for index in 0..<1000 { log.append("line \(index)") }
        let next = await early.next()
        guard case .line(let marker) = next else {
            Issue.record("expected a line, got \(String(describing: next))")
            return
        }
        #expect(marker.hasPrefix("[log truncated: ") && marker.contains("before this reader got them"), "\(marker)")
        var rest: [String] = []
        let finisher = Task {
            try await Task.sleep(for: .milliseconds(200))
            log.append("last")
            log.finish(status: "failed", error: "exit 3")
        }
        while let event = await early.next() {
            if case .line(let line) = event { rest.append(line) } else {
                #expect(event == .finished(status: "failed", error: "exit 3"))
            }
        }
        try await finisher.value
        #expect(rest.last == "last" && rest.dropLast().last == "line 999")
        // A follower that comes afterwards: the marker, the ring, the end.
        var late: [BuildLog.Event] = []
        for await event in log.follow() { late.append(event) }
        #expect(late.last == .finished(status: "failed", error: "exit 3"))
        if case .line(let first) = late.first { #expect(first.hasPrefix("[log truncated: ")) }
    }

    @Test func aCancelledFollowerStopsWaiting() async {
        let log = BuildLog(path: nil)
        log.append("only")
        let reader = Task {
            var count = 0
            for await _ in log.follow() { count += 1 }
            return count
        }
        try? await Task.sleep(for: .milliseconds(200))
        reader.cancel()
        #expect(await reader.value == 1)
    }

    @Test func stepsAreEventsInTheirPlaceLiveAndReadBackAndLeaveTheRingWithTheirLines() async throws {
        let path = Self.temporaryPath()
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: BuildLog.stepsPath(path))
        }
        let log = BuildLog(path: path, maxBytes: 8192)
        let running = StepProgress(step: 1, total: 2, line: 3, command: "RUN apt-get install -y cowsay", status: .running)
        let done = StepProgress(step: 1, total: 2, line: 3, command: running.command, status: .done, elapsedSeconds: 2.5)
        log.append("building")
        log.step(running)
        log.append("  Setting up cowsay")
        log.step(done)
        log.finish(status: "ready", error: nil)
        var events: [BuildLog.Event] = []
        for await event in log.follow() { events.append(event) }
        let expected: [BuildLog.Event] = [
            .line("building"), .step(running), .line("  Setting up cowsay"), .step(done), .finished(status: "ready", error: nil),
        ]
        #expect(events == expected)
        #expect(log.steps == [done])
        // Read back from its files: the same events in the same places.
        var loaded: [BuildLog.Event] = []
        for await event in BuildLog.load(path: path, status: "ready", error: nil).follow() { loaded.append(event) }
        #expect(loaded == expected)
        // A step whose line left the ring is not replayed (its event went with it).
        let small = BuildLog(path: nil, maxBytes: 4096)
        small.step(running)
        for index in 0..<200 { small.append("line \(index) " + String(repeating: "y", count: 60)) }
        small.finish(status: "ready", error: nil)
        var kept: [BuildLog.Event] = []
        for await event in small.follow() { kept.append(event) }
        #expect(!kept.contains(.step(running)))
        #expect(small.steps == [running])
    }
}
