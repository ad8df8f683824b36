import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OmniRunCore
import OmniRunError

/// One QEMU process and everything it owns under its directory.
public final class QEMUMachine: MachineInstance, @unchecked Sendable {
    public let name: String
    public let agentSocketPath: String
    public let directory: String
    let qmpSocketPath: String
    let serialLogPath: String
    /// False when the machine was attached after a restart (not our child).
    let ownChild: Bool
    public let processID: Int32
    let accelerator: Accelerator
    let image: MachineImage
    let memoryFile: String?
    /// The machine has a network card (its snapshot says so; a pause cannot keep it yet).
    let hasNIC: Bool
    let confinement: MachineConfinement
    let logger: Logger
    private let group: any EventLoopGroup

    private struct Inner {
        var lifecycle = MachineLifecycle()
        var exit: MachineExit?
        var exitWaiters: [CheckedContinuation<MachineExit, Never>] = []
        var qmp: QMPClient?
        var destroyed = false
    }
    private let inner = NIOLockedValueBox(Inner())

    init(
        name: String, directory: String, ownChild: Bool, pid: Int32, accelerator: Accelerator, image: MachineImage,
        memoryFile: String?, hasNIC: Bool = false, confinement: MachineConfinement, group: any EventLoopGroup, logger: Logger
    ) {
        self.hasNIC = hasNIC
        self.confinement = confinement
        self.processID = pid
        self.name = name
        self.directory = directory
        self.agentSocketPath = MachineSockets.path(directory, "agent.sock")
        self.qmpSocketPath = MachineSockets.path(directory, "qmp.sock")
        self.serialLogPath = directory + "/console.log"
        self.ownChild = ownChild
        self.accelerator = accelerator
        self.image = image
        self.memoryFile = memoryFile
        self.group = group
        self.logger = logger
    }

    public var state: MachineState {
        get async { inner.withLockedValue { $0.lifecycle.state } }
    }

    func markStarted() {
        inner.withLockedValue { inner in
            try? inner.lifecycle.transition(to: .starting)
            try? inner.lifecycle.transition(to: .running)
        }
    }

    /// Called once the VMM has gone (by its reaper thread, or the watch of an attached one).
    func processExited(status: Int32, reason: Process.TerminationReason) {
        let waiters: [CheckedContinuation<MachineExit, Never>]
        let exit: MachineExit?
        (waiters, exit) = inner.withLockedValue { inner in
            // The first report wins.
            if inner.exit != nil { return ([], nil) }
            let exit: MachineExit
            if inner.lifecycle.state == .stopping || inner.destroyed {
                exit = .requested
            } else if reason == .exit && status == 0 {
                exit = .guestShutdown
            } else {
                exit = .crashed(reason == .uncaughtSignal ? "QEMU killed by signal \(status)" : "QEMU exited with status \(status)")
            }
            inner.exit = exit
            try? inner.lifecycle.transition(to: .stopped(exit))
            let waiters = inner.exitWaiters
            inner.exitWaiters.removeAll()
            return (waiters, exit)
        }
        guard let exit else { return }
        if case .crashed = exit {
            logger.error("machine crashed", metadata: ["machine": "\(name)", "reason": "\(exit)"])
        }
        for waiter in waiters { waiter.resume(returning: exit) }
    }

    public func waitForExit() async -> MachineExit {
        await withCheckedContinuation { continuation in
            let ready: MachineExit? = inner.withLockedValue { inner in
                if let exit = inner.exit { return exit }
                inner.exitWaiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    var hasExited: Bool { inner.withLockedValue { $0.exit != nil } }

    /// Watches a VMM that is not our child: it is gone when signal 0 fails.
    func monitorDetached() {
        Task { [weak self] in
            while let self, !self.hasExited {
                if kill(self.processID, 0) != 0 && errno == ESRCH {
                    self.confinement.removeCgroup()
                    self.processExited(status: -1, reason: .uncaughtSignal)
                    return
                }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    func qmp() async throws -> QMPClient {
        if let existing = inner.withLockedValue({ $0.qmp }), await existing.isConnected { return existing }
        guard !hasExited else { throw OmniRunError(.machineFailed, "machine \(name) has stopped") }
        let client = try await QMPClient.connect(path: qmpSocketPath, name: name, timeout: .seconds(10), group: group)
        inner.withLockedValue { $0.qmp = client }
        return client
    }

    /// The tail of the guest console and of QEMU's own messages.
    public func consoleTail(maxBytes: Int) async -> String {
        var text = Self.tail(of: serialLogPath, maxBytes: maxBytes)
        let qemuLog = Self.tail(of: directory + "/qemu.log", maxBytes: 2000)
        if !qemuLog.isEmpty { text += "\n--- qemu ---\n" + qemuLog }
        return text
    }

    static func tail(of path: String, maxBytes: Int) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > UInt64(maxBytes) ? size - UInt64(maxBytes) : 0)
        let data = (try? handle.readToEnd()) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Saves the machine: pauses it, writes device state (RAM stays in its shared
    /// memory file), lets QEMU flush the disk and exit. The files become read-only.
    public func snapshot(into target: String) async throws -> MachineSnapshot {
        guard let memoryFile else {
            throw OmniRunError(.unsupported, "machine \(name) was not booted snapshotable")
        }
        let qmp = try await qmp()
        try await qmp.execute("stop")
        try await qmp.execute(
            "migrate-set-capabilities", arguments: #"{"capabilities":[{"capability":"x-ignore-shared","state":true}]}"#)
        let fm = FileManager.default
        try fm.createDirectory(atPath: target, withIntermediateDirectories: true)
        let statePath = target + "/device.state"
        // The device state streams to the server (QEMU may not spawn `exec:` helpers).
        let receiver = try MigrationReceiver(
            socketPath: MachineSockets.path(directory, "migrate.sock"), outputPath: statePath, owner: confinement.identity)
        defer { receiver.cancel() }
        try await qmp.execute("migrate", arguments: #"{"uri":"unix:\#(socketName(receiver.socketPath))"}"#)
        try await waitForMigration(qmp, deadline: .seconds(60), what: "saving")
        _ = try await receiver.finished()
        markStopping()
        _ = try? await qmp.execute("quit")
        _ = await waitForExit()
        // The disk becomes a layer: it must still name the backing file it was given, and
        // from now on it is the server's, read-only (QEMU's user can no longer change it).
        let disk = directory + "/disk.qcow2"
        if let chain = confinement.chain {
            try DiskChain.verify(overlay: disk, names: chain.backingName)
        }
        // Move the memory file and the disk beside the device state.
        let memoryTarget = target + "/memory.raw"
        let diskTarget = target + "/disk.qcow2"
        try? fm.removeItem(atPath: memoryTarget)
        try? fm.removeItem(atPath: diskTarget)
        try fm.moveItem(atPath: memoryFile, toPath: memoryTarget)
        try fm.moveItem(atPath: disk, toPath: diskTarget)
        for path in [memoryTarget, diskTarget, statePath] {
            try Self.freeze(path)
        }
        await destroy()
        return MachineSnapshot(
            image: image, directory: target, memoryFile: memoryTarget, deviceStateFile: statePath, diskFile: diskTarget,
            accelerator: accelerator.rawValue, createdAtMillis: Int64(Date().timeIntervalSince1970 * 1000),
            hasNIC: hasNIC ? true : nil)
    }

    /// Makes a file the server's and read-only for everyone.
    static func freeze(_ path: String) throws {
        guard chown(path, geteuid(), getegid()) == 0, chmod(path, 0o444) == 0 else {
            throw OmniRunError(.internalError, "cannot make \(path) read-only: errno \(errno)")
        }
    }

    /// How QEMU, working in the machine's folder, names a socket of the server's.
    func socketName(_ path: String) -> String {
        path.hasPrefix(directory + "/") ? String(path.dropFirst(directory.count + 1)) : path
    }

    public func setPriority(_ niceness: Int32) {
        let pid = processID
        // Niceness is per thread on Linux: set it on every thread of the VMM.
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        for task in tasks {
            if let tid = id_t(task) { setpriority(__priority_which_t(PRIO_PROCESS.rawValue), tid, niceness) }
        }
    }

    /// Kills QEMU (if it still runs), waits for it and removes the machine's directory.
    public func destroy() async {
        let alreadyDone = inner.withLockedValue { inner -> Bool in
            if inner.destroyed { return true }
            inner.destroyed = true
            if !inner.lifecycle.state.isTerminal { try? inner.lifecycle.transition(to: .stopping) }
            return false
        }
        if alreadyDone { return }
        await killAndWait()
        try? FileManager.default.removeItem(atPath: directory)
        MachineSockets.removeOutsideFolder(directory, names: MachineSockets.names)
    }

    /// Kills QEMU (if it still runs) and waits for it; the folder stays (a paused
    /// machine's state and disk live there).
    public func stopKeepingFiles() async {
        markStopping()
        await killAndWait()
    }

    func markStopping() {
        inner.withLockedValue { inner in
            if !inner.lifecycle.state.isTerminal, inner.lifecycle.state != .stopping {
                try? inner.lifecycle.transition(to: .stopping)
            }
        }
    }

    private func killAndWait() async {
        if !hasExited {
            kill(processID, SIGKILL)
        }
        while !hasExited {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

extension QEMUMachine {
    public func stopCPUs() async throws {
        try await qmp().execute("stop")
    }

    /// The longest run-queue wait of any of QEMU's threads (`/proc/PID/task/*/schedstat`,
    /// second field, in nanoseconds). The vCPU thread is what matters; taking the
    /// maximum never adds up waits of threads that waited at the same time.
    public func starvation() -> Duration {
        let tasks = "/proc/\(processID)/task"
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: tasks) else { return .zero }
        var longest: Int64 = 0
        for thread in threads {
            guard let text = try? String(contentsOfFile: "\(tasks)/\(thread)/schedstat", encoding: .utf8) else { continue }
            let fields = text.split(separator: " ")
            if fields.count >= 2, let waited = Int64(fields[1].trimmingCharacters(in: .whitespacesAndNewlines)) {
                longest = max(longest, waited)
            }
        }
        return .nanoseconds(longest)
    }

    /// The run state, and the first lines of each vCPU's registers (`RIP`, `HLT=`):
    /// enough to tell a guest halted waiting for an interrupt from one spinning.
    public func diagnostics() async -> String {
        guard let qmp = try? await qmp() else { return "QMP unreachable" }
        var lines: [String] = []
        if let status = try? await qmp.execute("query-status") { lines.append(String(decoding: status, as: UTF8.self)) }
        for command in ["info registers -a", "info lapic"] {
            let arguments = #"{"command-line":"\#(command)"}"#
            if let reply = try? await qmp.execute("human-monitor-command", arguments: arguments) {
                let text = String(decoding: reply, as: UTF8.self)
                    .replacingOccurrences(of: "\\r\\n", with: "\n").replacingOccurrences(of: "\\n", with: "\n")
                lines.append(command + ":\n" + text.split(separator: "\n").prefix(24).joined(separator: "\n"))
            }
        }
        return lines.joined(separator: "\n")
    }

    public func continueCPUs() async throws {
        try await qmp().execute("cont")
    }
}
