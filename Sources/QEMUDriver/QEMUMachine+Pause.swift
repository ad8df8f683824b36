import Foundation
import OmniRunCore
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Pause: the whole machine saved into its own folder, its VMM stopped.
///
/// The CPUs stop, then QEMU migrates the machine (every non-zero page of RAM and the
/// device state; zero pages travel as a flag) to `MigrationReceiver`, which writes
/// `paused.state`; QEMU flushes the disk overlay and exits. `disk.qcow2` stays where
/// it is. `paused.json` is written last, so a folder holding it is a complete pause.
extension QEMUMachine {
    static let pausedStateName = "paused.state"

    public func pause() async throws -> PausedMachine {
        let qmp = try await qmp()
        let statePath = directory + "/" + Self.pausedStateName
        let partial = statePath + ".partial"
        let receiver = try MigrationReceiver(
            socketPath: MachineSockets.path(directory, "migrate.sock"), outputPath: partial, owner: confinement.identity)
        defer { receiver.cancel() }
        let started = ContinuousClock.now
        try await qmp.execute("stop")
        let bytes: Int64
        do {
            // A restored machine was started with `x-ignore-shared` (its RAM was the
            // template's file); here every page must travel. QEMU's default migration
            // bandwidth is 32 MiB/s: the CPUs are stopped, so no limit is wanted.
            try await qmp.execute(
                "migrate-set-capabilities", arguments: #"{"capabilities":[{"capability":"x-ignore-shared","state":false}]}"#)
            try await qmp.execute("migrate-set-parameters", arguments: #"{"max-bandwidth":17179869184,"downtime-limit":2000}"#)
            try await qmp.execute("migrate", arguments: #"{"uri":"unix:\#(socketName(receiver.socketPath))"}"#)
            try await waitForMigration(qmp, deadline: .seconds(600), what: "pausing")
            bytes = try await receiver.finished()
        } catch {
            _ = try? await qmp.execute("migrate_cancel")
            _ = try? await qmp.execute("cont")
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
        markStopping()
        _ = try? await qmp.execute("quit")
        _ = await waitForExit()
        let fm = FileManager.default
        try? fm.removeItem(atPath: statePath)
        try fm.moveItem(atPath: partial, toPath: statePath)
        let disk = directory + "/disk.qcow2"
        Self.syncFile(disk)
        let paused = PausedMachine(
            image: image, directory: directory, stateFile: statePath, diskFile: disk, accelerator: accelerator.rawValue,
            pausedAtMillis: Int64(Date().timeIntervalSince1970 * 1000), hasNIC: hasNIC)
        let manifest = PausedMachine.manifestPath(in: directory)
        try JSONEncoder().encode(paused).write(to: URL(fileURLWithPath: manifest + ".tmp"))
        Self.syncFile(manifest + ".tmp")
        try? fm.removeItem(atPath: manifest)
        try fm.moveItem(atPath: manifest + ".tmp", toPath: manifest)
        Self.syncFile(directory)
        logger.info(
            "machine paused",
            metadata: ["machine": "\(name)", "stateBytes": "\(bytes)", "took": "\(ContinuousClock.now - started)"])
        return paused
    }

    /// Polls `query-migrate` until the migration has completed (or failed).
    func waitForMigration(_ qmp: QMPClient, deadline timeout: Duration, what: String) async throws {
        struct MigrationInfo: Decodable {
            var status: String?
            var errorDesc: String?
            enum CodingKeys: String, CodingKey {
                case status
                case errorDesc = "error-desc"
            }
        }
        let deadline = ContinuousClock.now + timeout
        while true {
            let info = try await qmp.query("query-migrate", as: MigrationInfo.self)
            if info.status == "completed" { return }
            if info.status == "failed" || info.status == "cancelled" {
                throw OmniRunError(.machineFailed, "\(what) \(name) failed: \(info.errorDesc ?? info.status ?? "?")")
            }
            if ContinuousClock.now > deadline { throw OmniRunError(.timeout, "\(what) \(name) took over \(timeout)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Flushes a file (or folder) to disk, so a pause survives the host too.
    static func syncFile(_ path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
