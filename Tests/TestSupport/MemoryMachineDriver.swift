import Foundation
import NIOConcurrencyHelpers
import OmniRunCore

/// A `MachineDriver` without VMs, for tests of everything above the machine: each
/// machine is a `FakeGuestAgent` in this process, listening on the machine's agent
/// socket in its folder. Saved machines are small files: a snapshot's "memory" and a
/// pause's state file hold the fake guest's `FakeGuestState` as JSON (its file system
/// and identity), so files survive pause → resume and are copied by a fork; the "disk"
/// and "device state" files are a few bytes each. Nothing needs /dev/kvm, QEMU or an image.
///
/// A machine stops when it is destroyed, paused, snapshotted, or when a test calls
/// `MemoryMachine.crash` (an unexpected exit, as a VMM dying). The counters and
/// `machine(named:)` let tests see what the runtime did.
public final class MemoryMachineDriver: MachineDriver {
    public static let accelerator = "memory"

    public var description: String { "memory" }
    public var snapshotCompatibilityKey: String { "memory-driver-v1" }

    /// How many machines each operation started.
    public struct Counts: Sendable, Equatable {
        public var boots = 0
        public var restores = 0
        public var resumes = 0
        public var forks = 0
    }

    private struct Registry {
        var live: [ObjectIdentifier: MemoryMachine] = [:]
        var counts = Counts()
        var restoreDelay: Duration = .zero
        var restoring = 0
        var mostRestoringAtOnce = 0
    }

    private let registry = NIOLockedValueBox(Registry())

    public init() {}

    /// Machines running now (started and not stopped).
    public var liveMachines: [MemoryMachine] {
        registry.withLockedValue { Array($0.live.values) }.sorted { $0.name < $1.name }
    }

    public var counts: Counts { registry.withLockedValue { $0.counts } }

    /// How long each restore takes (a slow host; default none).
    public var restoreDelay: Duration {
        get { registry.withLockedValue { $0.restoreDelay } }
        set { registry.withLockedValue { $0.restoreDelay = newValue } }
    }

    /// The most restores that were under way at the same time.
    public var mostRestoringAtOnce: Int { registry.withLockedValue { $0.mostRestoringAtOnce } }

    /// The running machine of a sandbox (by its id), if any.
    public func machine(named name: String) -> MemoryMachine? {
        registry.withLockedValue { $0.live.values.first { $0.name == name } }
    }

    func stopped(_ machine: MemoryMachine) {
        _ = registry.withLockedValue { $0.live.removeValue(forKey: ObjectIdentifier(machine)) }
    }

    public func boot(image: MachineImage, options: MachineOptions, snapshotable: Bool) async throws -> any MachineInstance {
        registry.withLockedValue { $0.counts.boots += 1 }
        return try await launch(image: image, options: options, state: .fresh())
    }

    public func restore(snapshot: MachineSnapshot, options: MachineOptions) async throws -> any MachineInstance {
        let delay = registry.withLockedValue {
            $0.counts.restores += 1
            $0.restoring += 1
            $0.mostRestoringAtOnce = max($0.mostRestoringAtOnce, $0.restoring)
            return $0.restoreDelay
        }
        defer { registry.withLockedValue { $0.restoring -= 1 } }
        if delay > .zero { try await Task.sleep(for: delay) }
        return try await launch(image: snapshot.image, options: options, state: try Self.load(snapshot.memoryFile))
    }

    public func resume(_ paused: PausedMachine, options: MachineOptions) async throws -> any MachineInstance {
        registry.withLockedValue { $0.counts.resumes += 1 }
        return try await launch(image: paused.image, options: options, state: try Self.load(paused.stateFile))
    }

    /// Each copy gets the saved state and a disk of its own in its folder.
    public func fork(_ paused: PausedMachine, into directories: [String]) async throws -> [PausedMachine] {
        registry.withLockedValue { $0.counts.forks += 1 }
        let state = try Data(contentsOf: URL(fileURLWithPath: paused.stateFile))
        let disk = try Data(contentsOf: URL(fileURLWithPath: paused.diskFile))
        var copies: [PausedMachine] = []
        for directory in directories {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var copy = paused
            copy.directory = directory
            copy.stateFile = directory + "/" + MemoryMachine.stateName
            copy.diskFile = directory + "/" + MemoryMachine.diskName
            try state.write(to: URL(fileURLWithPath: copy.stateFile))
            try disk.write(to: URL(fileURLWithPath: copy.diskFile))
            copies.append(copy)
        }
        return copies
    }

    /// The disk as it is (a memory machine's disk is one file).
    public func exportDisk(of paused: PausedMachine, to disk: String) async throws {
        try? FileManager.default.removeItem(atPath: disk)
        try FileManager.default.copyItem(atPath: paused.diskFile, toPath: disk)
    }

    /// The disk becomes the machine's in its new folder.
    public func importPaused(_ paused: PausedMachine, disk: String, into directory: String) async throws -> PausedMachine {
        var moved = paused
        moved.directory = directory
        moved.diskFile = directory + "/" + MemoryMachine.diskName
        try? FileManager.default.removeItem(atPath: moved.diskFile)
        try FileManager.default.moveItem(atPath: disk, toPath: moved.diskFile)
        return moved
    }

    /// The machine of this folder if it still runs in this process (a server started again
    /// on the same driver finds it); anything else is gone.
    public func attach(image: MachineImage, options: MachineOptions, pid: Int32) async throws -> any MachineInstance {
        let found = registry.withLockedValue { $0.live.values.first { $0.directory == options.directory } }
        guard let found, pid == found.processID else {
            throw MemoryMachineError("no machine of \(options.directory) runs in this process")
        }
        return found
    }

    private func launch(image: MachineImage, options: MachineOptions, state: FakeGuestState) async throws -> MemoryMachine {
        let machine = try await MemoryMachine.start(image: image, options: options, state: state, driver: self)
        registry.withLockedValue { $0.live[ObjectIdentifier(machine)] = machine }
        return machine
    }

    static func load(_ path: String) throws -> FakeGuestState {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MemoryMachineError("saved machine state \(path) is missing")
        }
        return try JSONDecoder().decode(FakeGuestState.self, from: data)
    }
}

public struct MemoryMachineError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
