import Foundation
import OmniRunCore
import OmniRunError

extension QEMUDriver {
    /// Starts a VMM describing the same machine as the paused one, with anonymous RAM
    /// (named like the file backend it was saved from), on the machine's own disk, and
    /// loads `paused.state` into it from stdin, then lets its CPUs go. The state file stays until the caller
    /// removes it (a failed resume leaves the pause as it was).
    public func resume(_ paused: PausedMachine, options: MachineOptions) async throws -> any MachineInstance {
        guard paused.accelerator == accelerator.rawValue else {
            throw OmniRunError(
                .conflict, "\(options.name) was paused under \(paused.accelerator), this host runs \(accelerator.rawValue)")
        }
        // The device state in the stream names the card: the new VMM must have the same one.
        guard (paused.hasNIC ?? false) == (options.nic != nil) else {
            throw OmniRunError(
                .conflict, "paused \(options.name) \(paused.hasNIC == true ? "had" : "had no") network card, the resume asks for the opposite")
        }
        guard FileManager.default.fileExists(atPath: paused.diskFile) else {
            throw OmniRunError(.notFound, "the disk of paused \(options.name) is missing: \(paused.diskFile)")
        }
        guard let state = FileHandle(forReadingAtPath: paused.stateFile) else {
            throw OmniRunError(.notFound, "the saved state of paused \(options.name) is missing: \(paused.stateFile)")
        }
        defer { try? state.close() }
        // The old VMM's sockets and logs: the new one makes its own.
        for name in MachineSockets.names {
            try? FileManager.default.removeItem(atPath: MachineSockets.path(options.directory, name))
        }
        let image = paused.image
        guard paused.diskFile == options.directory + "/disk.qcow2" else {
            throw OmniRunError(.internalError, "the disk of paused \(options.name) is not in its folder: \(paused.diskFile)")
        }
        let chain = try chainOfPausedDisk(in: options.directory)
        let machine = try launch(options: options, image: image, chain: chain, memory: .anonymous, stdin: state)
        do {
            let qmp = try await machine.qmp()
            try await qmp.execute("migrate-incoming", arguments: #"{"uri":"fd:0"}"#)
            // The machine was saved with its CPUs stopped, and the stream says so: it
            // arrives paused whatever `cont` said during the load. So: wait, then run.
            try await machine.waitForMigration(qmp, deadline: .seconds(600), what: "loading")
            try await qmp.execute("cont")
        } catch {
            try? await Task.sleep(for: .milliseconds(50))
            let diagnostics = await machine.consoleTail(maxBytes: 2000)
            await machine.stopKeepingFiles()
            throw OmniRunError(.machineFailed, "resuming \(options.name) failed: \(error)\n\(diagnostics)")
        }
        return machine
    }

    /// The layers under a paused machine's disk: as recorded when it was started (the
    /// server's own file). A pause made before that record existed (its VMM ran as root,
    /// so its overlay is the server's) is read from the overlay's header.
    func chainOfPausedDisk(in directory: String) throws -> DiskChain {
        if let recorded = DiskChain.read(from: directory) {
            // The layers are checked again (they must still be the server's read-only files).
            for layer in recorded.layers { try DiskChain.checkTrusted(layer.path, owner: layerOwner) }
            return recorded
        }
        let disk = directory + "/disk.qcow2"
        try DiskChain.checkTrusted(disk, owner: layerOwner)
        guard let header = try QCOW2Header.read(disk), let backing = header.backingName, let format = header.backingFormat else {
            throw OmniRunError(.machineFailed, "the disk of the paused machine in \(directory) names no backing file")
        }
        return try DiskChain.below(backingName: backing, format: format, in: directory, trusting: layerOwner)
    }
}
