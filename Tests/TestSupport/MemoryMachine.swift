import Foundation
import NIOConcurrencyHelpers
import OmniRunCore

/// One machine of a `MemoryMachineDriver`: a folder (console log, a small disk file, the
/// agent socket) and a `FakeGuestAgent` serving on that socket.
public final class MemoryMachine: MachineInstance {
    static let stateName = "paused.state"
    static let diskName = "disk.img"
    static let consoleName = "console.log"

    public let name: String
    /// The test process itself: nothing outside QEMUDriver signals a machine's pid, and
    /// a mistake that did would show here instead of hitting a stranger.
    public let processID: Int32 = getpid()
    public let directory: String
    public let agentSocketPath: String
    public let image: MachineImage
    private let hasNIC: Bool
    private let driver: MemoryMachineDriver
    private let inner: NIOLockedValueBox<Inner>

    private struct Inner {
        var state: MachineState = .starting
        var exit: MachineExit?
        var waiters: [CheckedContinuation<MachineExit, Never>] = []
        var agent: FakeGuestAgent?
        var cpusStopped = false
    }

    private init(image: MachineImage, options: MachineOptions, driver: MemoryMachineDriver) {
        self.name = options.name
        self.directory = options.directory
        self.agentSocketPath = MachineSockets.path(options.directory, "agent.sock")
        self.image = image
        self.hasNIC = options.nic != nil
        self.driver = driver
        self.inner = NIOLockedValueBox(Inner())
    }

    static func start(
        image: MachineImage, options: MachineOptions, state: FakeGuestState, driver: MemoryMachineDriver
    ) async throws -> MemoryMachine {
        let fm = FileManager.default
        try fm.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
        let console = options.directory + "/" + consoleName
        if !fm.fileExists(atPath: console) { _ = fm.createFile(atPath: console, contents: Data("fake guest booted\n".utf8)) }
        let disk = options.directory + "/" + diskName
        if !fm.fileExists(atPath: disk) { _ = fm.createFile(atPath: disk, contents: Data("fake disk\n".utf8)) }
        let machine = MemoryMachine(image: image, options: options, driver: driver)
        let agent = try await FakeGuestAgent.start(path: machine.agentSocketPath, state: state, console: console) { [weak machine] in
            await machine?.stop(.guestShutdown, removingFiles: false)
        }
        machine.inner.withLockedValue {
            $0.agent = agent
            $0.state = .running
        }
        return machine
    }

    /// The fake agent of this machine (nil once it stopped).
    public var agent: FakeGuestAgent? { inner.withLockedValue { $0.agent } }

    /// Whether `stopCPUs` froze it (a pooled machine).
    public var cpusStopped: Bool { inner.withLockedValue { $0.cpusStopped } }

    public var state: MachineState {
        get async { inner.withLockedValue { $0.state } }
    }

    /// The machine stops on its own, as when its VMM dies: its agent goes away, its files
    /// stay, and `waitForExit` reports `.crashed(reason)`.
    public func crash(_ reason: String = "the fake machine crashed") async {
        await stop(.crashed(reason), removingFiles: false)
    }

    public func snapshot(into directory: String) async throws -> MachineSnapshot {
        guard let agent else { throw MemoryMachineError("machine \(name) is not running") }
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let memory = directory + "/memory.json"
        let device = directory + "/device.state"
        let disk = directory + "/" + Self.diskName
        try JSONEncoder().encode(await agent.state()).write(to: URL(fileURLWithPath: memory))
        try Data("{}".utf8).write(to: URL(fileURLWithPath: device))
        try? fm.removeItem(atPath: disk)
        try fm.copyItem(atPath: self.directory + "/" + Self.diskName, toPath: disk)
        await stop(.requested, removingFiles: self.directory != directory)
        return MachineSnapshot(
            image: image, directory: directory, memoryFile: memory, deviceStateFile: device, diskFile: disk,
            accelerator: MemoryMachineDriver.accelerator, createdAtMillis: guestClockMillis(), hasNIC: hasNIC ? true : nil)
    }

    /// Saves the fake guest's state in the folder and stops; `paused.json` is written last.
    public func pause() async throws -> PausedMachine {
        guard let agent else { throw MemoryMachineError("machine \(name) is not running") }
        let stateFile = directory + "/" + Self.stateName
        try JSONEncoder().encode(await agent.state()).write(to: URL(fileURLWithPath: stateFile))
        await stop(.requested, removingFiles: false)
        let paused = PausedMachine(
            image: image, directory: directory, stateFile: stateFile, diskFile: directory + "/" + Self.diskName,
            accelerator: MemoryMachineDriver.accelerator, pausedAtMillis: guestClockMillis(), hasNIC: hasNIC ? true : nil)
        try JSONEncoder().encode(paused).write(to: URL(fileURLWithPath: PausedMachine.manifestPath(in: directory)))
        return paused
    }

    public func stopKeepingFiles() async {
        await stop(.requested, removingFiles: false)
    }

    public func destroy() async {
        await stop(.requested, removingFiles: true)
    }

    public func waitForExit() async -> MachineExit {
        await withCheckedContinuation { continuation in
            let exit: MachineExit? = inner.withLockedValue { inner in
                if let exit = inner.exit { return exit }
                inner.waiters.append(continuation)
                return nil
            }
            if let exit { continuation.resume(returning: exit) }
        }
    }

    public func consoleTail(maxBytes: Int) async -> String {
        let text = (try? String(contentsOfFile: directory + "/" + Self.consoleName, encoding: .utf8)) ?? ""
        return String(text.suffix(maxBytes))
    }

    public func setPriority(_ niceness: Int32) {}

    public func stopCPUs() async throws {
        inner.withLockedValue { $0.cpusStopped = true }
    }

    public func continueCPUs() async throws {
        inner.withLockedValue { $0.cpusStopped = false }
    }

    /// Stops once (the first reason wins); `removingFiles` also when already stopped.
    private func stop(_ exit: MachineExit, removingFiles: Bool) async {
        let stopping: (agent: FakeGuestAgent?, waiters: [CheckedContinuation<MachineExit, Never>])? = inner.withLockedValue { inner in
            guard inner.exit == nil else { return nil }
            let taken = (inner.agent, inner.waiters)
            inner.exit = exit
            inner.state = .stopped(exit)
            inner.agent = nil
            inner.waiters = []
            return taken
        }
        if let stopping {
            await stopping.agent?.stop()
            driver.stopped(self)
            for waiter in stopping.waiters { waiter.resume(returning: exit) }
        }
        if removingFiles {
            try? FileManager.default.removeItem(atPath: directory)
            MachineSockets.removeOutsideFolder(directory, names: MachineSockets.names)
        }
    }
}
