import AgentClient
import AgentProtocol
import Foundation
import Logging
import OmniRunCore
import OmniRunError

/// Template snapshots: each template is booted once, warmed up, and saved; the
/// result is kept under `<data>/snapshots/<template>-<key>` where the key covers the
/// image, the agent protocol and the VMM, so a change to any of them makes a new one.
actor SnapshotStore {
    private let driver: any MachineDriver
    private let directory: String
    private let logger: Logger
    private var building: [String: Task<MachineSnapshot, any Error>] = [:]

    init(driver: any MachineDriver, directory: String, logger: Logger) {
        self.driver = driver
        self.directory = directory
        self.logger = logger
    }

    static func key(for image: MachineImage, setup: TemplateSetup, driver: any MachineDriver, network: Bool = false) -> String {
        var parts = [
            "snapshot-v1", image.key, "\(image.memoryMB)", "\(image.vcpus)", "agent-api-\(AgentAPI.version)",
            driver.snapshotCompatibilityKey,
        ]
        if let service = setup.snapshotKeyPart { parts.append(service) }
        if network { parts.append("nic") }
        return stableHash(parts.joined(separator: "|"))
    }

    /// A template has two snapshots: without a network card (air-gapped sandboxes) and,
    /// taken on first use, with one (`<template>+net`, for sandboxes with internet access).
    private func folder(for image: MachineImage, setup: TemplateSetup, network: Bool = false) -> String {
        directory + "/\(image.template)\(network ? "+net" : "")-\(Self.key(for: image, setup: setup, driver: driver, network: network))"
    }

    func existing(for image: MachineImage, setup: TemplateSetup) -> MachineSnapshot? {
        Self.load(folder(for: image, setup: setup))
    }

    /// Whether a snapshot is being taken by this process right now.
    func isBuilding(_ image: MachineImage, setup: TemplateSetup) -> Bool {
        building[folder(for: image, setup: setup)] != nil
    }

    func snapshot(for image: MachineImage, setup: TemplateSetup, network: Bool = false) async throws -> MachineSnapshot {
        let dir = folder(for: image, setup: setup, network: network)
        if let ready = Self.load(dir) { return ready }
        if let task = building[dir] { return try await task.value }
        let task = Task { try await self.build(image: image, into: dir, setup: setup, network: network) }
        building[dir] = task
        defer { building[dir] = nil }
        return try await task.value
    }

    private static func load(_ dir: String) -> MachineSnapshot? {
        guard let data = FileManager.default.contents(atPath: dir + "/snapshot.json"),
            let snapshot = try? JSONDecoder().decode(MachineSnapshot.self, from: data),
            [snapshot.memoryFile, snapshot.deviceStateFile, snapshot.diskFile].allSatisfy({
                FileManager.default.fileExists(atPath: $0)
            })
        else { return nil }
        return snapshot
    }

    private func build(image: MachineImage, into dir: String, setup: TemplateSetup, network: Bool) async throws -> MachineSnapshot {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Other processes (parallel test runs, a second server) may build the same one.
        let lock = try FileLock(path: dir + ".lock")
        try await lock.acquire()
        defer { lock.release() }
        if let ready = Self.load(dir) { return ready }
        try? fm.removeItem(atPath: dir)

        let started = ContinuousClock.now
        logger.info(
            "building template snapshot",
            metadata: ["template": "\(image.template)", "driver": "\(driver.description)", "network": "\(network)"])
        let machineDir = directory + "/.build-\(image.template)-\(UUID().uuidString.prefix(8))"
        let machine = try await driver.boot(
            image: image,
            options: MachineOptions(
                name: "template-\(image.template)", directory: machineDir, nic: network ? .unconnected : nil),
            snapshotable: true)
        do {
            let agent = try await GuestAgentClient.connect(
                socketPath: machine.agentSocketPath, name: "template \(image.template)", timeout: .seconds(120),
                logger: logger, starvedFor: { machine.starvation() }, giveUpIf: { await machine.state.isTerminal ? "\(await machine.state)" : nil })
            let bootTime = ContinuousClock.now - started
            // Warm the page cache with what every sandbox runs first.
            for command in ["true"] + setup.warmUp {
                let result = try await agent.run(ProcessStartRequest(shell: command, user: "root", timeoutMillis: 300_000))
                if result.exitCode != 0 {
                    logger.warning(
                        "template warm-up command failed",
                        metadata: [
                            "template": "\(image.template)", "command": "\(command)", "exit": "\(result.exitCode)",
                            "stderr": "\(result.stderrText.suffix(500))",
                        ])
                }
            }
            try await ServiceStarter(agent: agent, template: image.template, logger: logger).start(setup)
            try await agent.prepareSnapshot()
            await agent.close()
            // Wait until the agent has seen the host leave and is parked (it says so on
            // the console), so each restore starts a fresh connection.
            let parkedBy = ContinuousClock.now + .seconds(30)
            while !(await machine.consoleTail(maxBytes: 4096)).contains(AgentAPI.snapshotParkedMarker) {
                guard ContinuousClock.now < parkedBy else {
                    throw OmniRunError(.timeout, "the agent of template \(image.template) did not park for its snapshot")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await Task.sleep(for: .milliseconds(100))
            let snapshot = try await machine.snapshot(into: dir)
            let data = try JSONEncoder().encode(snapshot)
            try data.write(to: URL(fileURLWithPath: dir + "/snapshot.json.tmp"))
            try fm.moveItem(atPath: dir + "/snapshot.json.tmp", toPath: dir + "/snapshot.json")
            logger.info(
                "template snapshot ready",
                metadata: [
                    "template": "\(image.template)", "boot": "\(bootTime)", "total": "\(ContinuousClock.now - started)",
                ])
            return snapshot
        } catch {
            let console = await machine.consoleTail(maxBytes: 2000)
            await machine.destroy()
            try? fm.removeItem(atPath: dir)
            // A template's own failure (its start command, a ready check that never
            // passes) keeps its code and message; the console is for the rest.
            if let error = error as? OmniRunError, error.message.hasPrefix("template \(image.template):") {
                throw error
            }
            throw OmniRunError(
                .machineFailed, "building the \(image.template) snapshot failed: \(error)\n--- console ---\n\(console)")
        }
    }
}

/// FNV-1a 64 of a string, as 16 hex digits (inputs are already content hashes).
func stableHash(_ text: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}

/// An exclusive lock on a file, shared with other processes (flock).
final class FileLock: @unchecked Sendable {
    private let fd: Int32

    init(path: String) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OmniRunError(.internalError, "cannot open lock \(path): errno \(errno)") }
    }

    func acquire() async throws {
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
