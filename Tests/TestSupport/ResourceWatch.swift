import Foundation
import NIOConcurrencyHelpers

/// What a process holds at one moment: open descriptors and resident memory.
public struct ProcessFigures: Sendable {
    public var descriptors: Int
    public var residentBytes: Int64

    public static func of(_ pid: Int32) -> ProcessFigures {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count ?? 0
        var resident: Int64 = 0
        if let data = FileManager.default.contents(atPath: "/proc/\(pid)/status") {
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                if parts.count >= 2, let kib = Int64(parts[1]) { resident = kib * 1024 }
            }
        }
        return ProcessFigures(descriptors: descriptors, residentBytes: resident)
    }
}

/// Watches a process (and a folder's disk use) while an attack runs: the figures
/// before it, the peak during it and after it, for the tests' closing table. Samples
/// every 100 ms (the disk every second).
public final class ResourceWatch: Sendable {
    public struct Report: Sendable, CustomStringConvertible {
        public var descriptors: (before: Int, peak: Int, after: Int)
        public var residentMiB: (before: Double, peak: Double, after: Double)
        public var diskMiB: (before: Double, peak: Double, after: Double)?

        public var description: String {
            var text = "fds \(descriptors.before)→\(descriptors.peak)→\(descriptors.after), "
                + String(format: "RSS %.1f→%.1f→%.1f MiB", residentMiB.before, residentMiB.peak, residentMiB.after)
            if let disk = diskMiB { text += String(format: ", disk %.1f→%.1f→%.1f MiB", disk.before, disk.peak, disk.after) }
            return text
        }
    }

    private struct State {
        var peakDescriptors = 0
        var peakResident: Int64 = 0
        var peakDisk: Int64 = 0
    }

    private let pid: Int32
    private let directory: String?
    private let before: ProcessFigures
    private let diskBefore: Int64
    private let state: NIOLockedValueBox<State>
    private let sampler: Task<Void, Never>

    public init(pid: Int32, directory: String? = nil) {
        self.pid = pid
        self.directory = directory
        let before = ProcessFigures.of(pid)
        let disk = directory.map(Self.diskBytes) ?? 0
        self.before = before
        self.diskBefore = disk
        let state = NIOLockedValueBox(State(peakDescriptors: before.descriptors, peakResident: before.residentBytes, peakDisk: disk))
        self.state = state
        sampler = Task {
            var ticks = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                let now = ProcessFigures.of(pid)
                ticks += 1
                let disk = ticks % 10 == 0 ? directory.map(Self.diskBytes) : nil
                state.withLockedValue {
                    $0.peakDescriptors = max($0.peakDescriptors, now.descriptors)
                    $0.peakResident = max($0.peakResident, now.residentBytes)
                    if let disk { $0.peakDisk = max($0.peakDisk, disk) }
                }
            }
        }
    }

    /// Stops watching (after `settle`, so what the attack left behind is measured).
    public func finish(settle: Duration = .seconds(1)) async -> Report {
        try? await Task.sleep(for: settle)
        sampler.cancel()
        let after = ProcessFigures.of(pid)
        let diskAfter = directory.map(Self.diskBytes) ?? 0
        let peak = state.withLockedValue { $0 }
        func mib(_ bytes: Int64) -> Double { Double(bytes) / 1_048_576 }
        return Report(
            descriptors: (before.descriptors, max(peak.peakDescriptors, after.descriptors), after.descriptors),
            residentMiB: (mib(before.residentBytes), mib(max(peak.peakResident, after.residentBytes)), mib(after.residentBytes)),
            diskMiB: directory == nil ? nil : (mib(diskBefore), mib(max(peak.peakDisk, diskAfter)), mib(diskAfter)))
    }

    /// Bytes allocated on disk under a folder (`du`: sparse files count what they use).
    public static func diskBytes(_ directory: String) -> Int64 {
        let output = runTool(["/usr/bin/du", "-s", "--block-size=1", directory])
        return Int64(output.split(separator: "\t").first ?? "") ?? 0
    }
}

/// Prints one line of an attack's figures (collected from the test log into the closing table).
public func reportFigures(_ attack: String, _ report: ResourceWatch.Report, outcome: String) {
    print("[figures] \(attack) | \(outcome) | \(report)")
}
