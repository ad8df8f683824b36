import Foundation
import OmniRunCore
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

extension QEMUDriver {
    /// Copies of a paused machine, to be resumed from the same saved state.
    ///
    /// The paused disk becomes a read-only layer `base-<fork>.qcow2`; the machine itself and
    /// every copy get a fresh overlay named `disk.qcow2` on it. Each folder holds its own hard
    /// link to every such layer (and the overlay names it by a relative path), so any of the
    /// sandboxes can be deleted, and forked again, without the others losing their disk.
    public func fork(_ paused: PausedMachine, into directories: [String]) async throws -> [PausedMachine] {
        let fm = FileManager.default
        let source = paused.directory
        // The paused disk becomes a layer: it must still name what it was given, and it
        // becomes the server's read-only file (QEMU's user wrote it until now).
        let previous = try chainOfPausedDisk(in: source)
        try DiskChain.verify(overlay: paused.diskFile, names: previous.backingName)
        let layer = "base-\(UInt64.random(in: 0..<UInt64.max) & 0xffff_ffff_ffff).qcow2"
        let frozen = source + "/" + layer
        try fm.moveItem(atPath: paused.diskFile, toPath: frozen)
        do {
            try QEMUMachine.freeze(frozen)
            try await createOverlay(backing: layer, backingFormat: "qcow2", at: paused.diskFile, in: source)
            try DiskChain.below(backingName: layer, format: "qcow2", in: source, trusting: layerOwner).write(into: source)
        } catch {
            try? fm.removeItem(atPath: paused.diskFile)
            try? fm.moveItem(atPath: frozen, toPath: paused.diskFile)
            throw error
        }
        let layers = try fm.contentsOfDirectory(atPath: source).filter { $0.hasPrefix("base-") && $0.hasSuffix(".qcow2") }
        var copies: [PausedMachine] = []
        for directory in directories {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for name in layers where link(source + "/" + name, directory + "/" + name) != 0 {
                throw OmniRunError(.machineFailed, "linking \(name) into \(directory) failed: errno \(errno)")
            }
            try await createOverlay(backing: layer, backingFormat: "qcow2", at: directory + "/disk.qcow2", in: directory)
            try DiskChain.below(backingName: layer, format: "qcow2", in: directory, trusting: layerOwner).write(into: directory)
            var copy = paused
            copy.directory = directory
            copy.diskFile = directory + "/disk.qcow2"
            copies.append(copy)
        }
        return copies
    }
}
