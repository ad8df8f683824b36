import Foundation
import OmniRunCore
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// A paused machine moving to another node: its disk leaves as one qcow2 file with no
/// backing (the layers below it are this node's: another node's snapshot of the same
/// template is other bytes), and arrives as the read-only layer under a fresh overlay, as a
/// fork's copies do.
extension QEMUDriver {
    public func exportDisk(of paused: PausedMachine, to disk: String) async throws {
        let chain = try chainOfPausedDisk(in: paused.directory)
        // QEMU's user wrote this file: a header that points at an external data file (a
        // host file to read from) is refused before qemu-img opens it.
        try Self.refuseExternalData(paused.diskFile)
        // The layers are named explicitly: never a backing name from a header QEMU wrote.
        var source = "driver=qcow2,file.driver=file,file.filename=\(QEMUCommandLine.escape(paused.diskFile))"
        var prefix = "backing."
        for layer in chain.layers {
            source += ",\(prefix)driver=\(layer.format),\(prefix)file.driver=file,\(prefix)file.filename=\(QEMUCommandLine.escape(layer.path))"
            prefix += "backing."
        }
        try? FileManager.default.removeItem(atPath: disk)
        try await runQEMUImg(["convert", "-q", "--image-opts", source, "-O", "qcow2", disk])
    }

    public func importPaused(_ paused: PausedMachine, disk: String, into directory: String) async throws -> PausedMachine {
        let fm = FileManager.default
        // The file came from another node: it must be a qcow2 that names no backing file.
        guard let header = try QCOW2Header.read(disk), header.backingName == nil else {
            throw OmniRunError(.invalidArgument, "a moved disk must be a qcow2 file without a backing file")
        }
        try Self.refuseExternalData(disk)
        let layer = "base-moved-\(UInt64.random(in: 0..<UInt64.max) & 0xffff_ffff_ffff).qcow2"
        try fm.moveItem(atPath: disk, toPath: directory + "/" + layer)
        try QEMUMachine.freeze(directory + "/" + layer)
        try await createOverlay(backing: layer, backingFormat: "qcow2", at: directory + "/disk.qcow2", in: directory)
        try DiskChain.below(backingName: layer, format: "qcow2", in: directory, trusting: layerOwner).write(into: directory)
        var moved = paused
        moved.directory = directory
        moved.diskFile = directory + "/disk.qcow2"
        moved.stateFile = directory + "/" + QEMUMachine.pausedStateName
        return moved
    }

    /// Fails if a qcow2 file's header sets the external-data-file feature (version 3,
    /// incompatible feature bit 2): its data would come from a file the header names.
    static func refuseExternalData(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw OmniRunError(.notFound, "cannot open \(path): errno \(errno)") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 80)
        let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 80, 0) }
        guard count == 80 else { throw OmniRunError(.invalidArgument, "\(path) is too short for a qcow2 header") }
        func word(_ at: Int, _ size: Int) -> UInt64 { bytes[at..<(at + size)].reduce(0) { $0 << 8 | UInt64($1) } }
        guard word(0, 4) == 0x5146_49fb else { throw OmniRunError(.invalidArgument, "\(path) is not a qcow2 file") }
        if word(4, 4) >= 3, word(72, 8) & 0b100 != 0 {
            throw OmniRunError(.invalidArgument, "\(path) keeps its data in an external file; it is not moved")
        }
    }
}
