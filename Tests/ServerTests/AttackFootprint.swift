import Foundation
import TestSupport

/// What a real server process held while an attack ran against it: open descriptors and
/// resident memory (before, peak sampled every 100 ms, after) and the disk its data folder
/// uses (before, after). Each measurement is printed and appended as a JSON line to
/// `.build/test-artifacts/attack-footprints.jsonl` (the figures of docs/security.md).
struct AttackFootprint: Sendable {
    var attack: String
    var outcome: String
    var descriptors: (before: Int, peak: Int, after: Int)
    var rssKiB: (before: Int, peak: Int, after: Int)
    var diskKiB: (before: Int, after: Int)

    static func descriptors(_ pid: Int32) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    }

    static func rssKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }

    static func diskKiB(_ directory: String) -> Int {
        Int(runTool(["/usr/bin/du", "-sk", directory]).split(separator: "\t").first ?? "") ?? 0
    }

    private actor Peak {
        var descriptors = 0
        var rss = 0
        func note(_ d: Int, _ r: Int) {
            descriptors = max(descriptors, d)
            rss = max(rss, r)
        }
    }

    /// Runs `attack` against `server`, sampling the server process meanwhile.
    static func measure<T: Sendable>(
        _ name: String, server: TestServer, outcome: String, _ attack: () async throws -> T
    ) async throws -> (T, AttackFootprint) {
        let pid = server.process.processIdentifier
        let before = (descriptors(pid), rssKiB(pid))
        let diskBefore = diskKiB(server.dataDirectory)
        let peak = Peak()
        await peak.note(before.0, before.1)
        let sampler = Task {
            while !Task.isCancelled {
                await peak.note(descriptors(pid), rssKiB(pid))
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        let value: T
        do {
            value = try await attack()
        } catch {
            sampler.cancel()
            throw error
        }
        sampler.cancel()
        _ = await sampler.value
        let after = (descriptors(pid), rssKiB(pid))
        await peak.note(after.0, after.1)
        let footprint = AttackFootprint(
            attack: name, outcome: outcome, descriptors: (before.0, await peak.descriptors, after.0),
            rssKiB: (before.1, await peak.rss, after.1), diskKiB: (diskBefore, diskKiB(server.dataDirectory)))
        footprint.record()
        return (value, footprint)
    }

    func record() {
        let object: [String: Any] = [
            "attack": attack, "outcome": outcome,
            "descriptors": ["before": descriptors.before, "peak": descriptors.peak, "after": descriptors.after],
            "rssKiB": ["before": rssKiB.before, "peak": rssKiB.peak, "after": rssKiB.after],
            "diskKiB": ["before": diskKiB.before, "after": diskKiB.after],
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        let line = String(decoding: data, as: UTF8.self)
        print("[footprint] \(line)")
        let directory = TestServer.packageRoot + "/.build/test-artifacts"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/attack-footprints.jsonl"
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write(Data((line + "\n").utf8))
            try? handle.close()
        }
    }
}
