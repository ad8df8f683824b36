import Foundation
import NIOConcurrencyHelpers
import TestSupport

/// What the server process holds: open descriptors, resident memory, and the disk its data
/// directory takes.
struct ResourceSample: Sendable, CustomStringConvertible {
    var descriptors: Int
    var rssKiB: Int
    var diskKiB: Int

    static func read(pid: Int32, dataDirectory: String) -> ResourceSample {
        ResourceSample(
            descriptors: descriptors(pid: pid), rssKiB: rssKiB(pid: pid), diskKiB: diskKiB(dataDirectory))
    }

    static func descriptors(pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    static func rssKiB(pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
        }
        return -1
    }

    static func diskKiB(_ directory: String) -> Int {
        Int(runTool(["/usr/bin/du", "-sk", directory]).split(separator: "\t").first ?? "") ?? -1
    }

    var description: String { "\(descriptors) fds, \(rssKiB / 1024) MiB RSS, \(diskKiB / 1024) MiB disk" }
}

/// Samples a server while an attack runs: before, the peak of each figure, and after.
final class ServerWatch: Sendable {
    let pid: Int32
    let dataDirectory: String
    let before: ResourceSample
    private let peak: NIOLockedValueBox<ResourceSample>
    private let sampler: Task<Void, Never>

    init(_ server: TestServer) {
        let pid = server.process.processIdentifier
        let directory = server.dataDirectory
        self.pid = pid
        self.dataDirectory = directory
        let first = ResourceSample.read(pid: pid, dataDirectory: directory)
        before = first
        let peak = NIOLockedValueBox(first)
        self.peak = peak
        sampler = Task {
            var rounds = 0
            while !Task.isCancelled {
                rounds += 1
                let descriptors = ResourceSample.descriptors(pid: pid)
                let rss = ResourceSample.rssKiB(pid: pid)
                // The disk is slower to measure: every tenth round.
                let disk = rounds % 10 == 0 ? ResourceSample.diskKiB(directory) : -1
                peak.withLockedValue {
                    $0.descriptors = max($0.descriptors, descriptors)
                    $0.rssKiB = max($0.rssKiB, rss)
                    $0.diskKiB = max($0.diskKiB, disk)
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    var peakSoFar: ResourceSample { peak.withLockedValue { $0 } }

    /// Stops sampling; `after` is taken once descriptors settle back to at most
    /// `before + slack` (or `settle` passes).
    func finish(settle: Duration = .seconds(30), slack: Int = 8) async -> (before: ResourceSample, peak: ResourceSample, after: ResourceSample) {
        let deadline = ContinuousClock.now + settle
        while ContinuousClock.now < deadline, ResourceSample.descriptors(pid: pid) > before.descriptors + slack {
            try? await Task.sleep(for: .milliseconds(250))
        }
        sampler.cancel()
        var peak = peak.withLockedValue { $0 }
        let after = ResourceSample.read(pid: pid, dataDirectory: dataDirectory)
        peak.diskKiB = max(peak.diskKiB, after.diskKiB)
        return (before, peak, after)
    }

    /// Prints the figures and keeps them in `.build/test-artifacts/host-limits.txt`.
    static func record(_ attack: String, _ figures: (before: ResourceSample, peak: ResourceSample, after: ResourceSample), outcome: String) {
        let line = "\(attack) | \(outcome) | fds \(figures.before.descriptors)/\(figures.peak.descriptors)/\(figures.after.descriptors)"
            + " | RSS MiB \(figures.before.rssKiB / 1024)/\(figures.peak.rssKiB / 1024)/\(figures.after.rssKiB / 1024)"
            + " | disk MiB \(figures.before.diskKiB / 1024)/\(figures.peak.diskKiB / 1024)/\(figures.after.diskKiB / 1024)"
        print("[host-limits] " + line)
        let directory = TestServer.packageRoot + "/.build/test-artifacts"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/host-limits.txt"
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write(Data((line + "\n").utf8))
            try? handle.close()
        }
    }
}
