import Foundation
import OmniRunCore
import OmniRunError

/// A paused sandbox moving between nodes (a drain): the leaving node writes its disk as one
/// file beside its saved state; the arriving node takes both into a folder of its own.
extension SandboxRuntime {
    /// Where a leaving sandbox's files wait for the other node (`<machine folder>/moving`).
    public nonisolated func movingDirectory(of id: SandboxID) -> String {
        machineDirectory(of: id) + "/moving"
    }

    /// Prepares a paused sandbox to leave: its saved state as it is, its disk as one file
    /// (`moving/disk.qcow2`). Nothing of the pause changes: a failed move leaves it resumable here.
    public func exportPaused(_ id: SandboxID) async throws -> (paused: PausedMachine, disk: String) {
        guard sandboxes[id] == nil, let paused = pausedMachine(id) else {
            throw OmniRunError(.conflict, "sandbox \(id) is not paused on this node")
        }
        let directory = movingDirectory(of: id)
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let disk = directory + "/disk.qcow2"
        do {
            try await driver.exportDisk(of: paused, to: disk)
        } catch {
            discardExport(id)
            throw error
        }
        return (paused, disk)
    }

    public nonisolated func discardExport(_ id: SandboxID) {
        try? FileManager.default.removeItem(atPath: movingDirectory(of: id))
    }

    /// A fresh folder for an arriving sandbox (what a failed earlier arrival left is
    /// removed); refused if the sandbox has a saved state here already.
    public nonisolated func prepareArrival(_ id: SandboxID) throws -> String {
        guard pausedMachine(id) == nil else {
            throw OmniRunError(.conflict, "sandbox \(id) already has a saved state on this node")
        }
        let directory = machineDirectory(of: id)
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory + "/arriving", withIntermediateDirectories: true)
        return directory
    }

    /// Takes an arrived sandbox in: its state at `<folder>/paused.state`, its disk at `disk`
    /// (in the folder); `paused` is the leaving node's description with this node's image
    /// files. Written last, the manifest makes it a paused sandbox of this node.
    public func importPaused(_ id: SandboxID, paused: PausedMachine, disk: String) async throws {
        let directory = machineDirectory(of: id)
        var arriving = paused
        arriving.stateFile = directory + "/paused.state"
        let moved = try await driver.importPaused(arriving, disk: disk, into: directory)
        try? FileManager.default.removeItem(atPath: directory + "/arriving")
        let manifest = PausedMachine.manifestPath(in: directory)
        try JSONEncoder().encode(moved).write(to: URL(fileURLWithPath: manifest + ".tmp"))
        guard rename(manifest + ".tmp", manifest) == 0 else {
            throw OmniRunError(.internalError, "cannot write \(manifest): errno \(errno)")
        }
    }
}
