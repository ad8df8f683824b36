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
        let commandLine = QEMUCommandLine(
            accelerator: accelerator, tscKHz: tscKHz, memoryMB: image.memoryMB, vcpus: image.vcpus, kernel: image.kernel,
            initrd: image.initrd, disk: paused.diskFile, agentSocket: MachineSockets.path(options.directory, "agent.sock"),
            qmpSocket: MachineSockets.path(options.directory, "qmp.sock"), serialLog: options.directory + "/console.log",
            memoryFile: nil, shareMemory: false, anonymousMemory: true, incoming: true, seccomp: configuration.seccomp,
            allowSpawn: false, runAs: configuration.runAs, extraKernelArguments: kernelArguments,
            tcgCPU: configuration.tcgCPU, tcgTranslationCacheMB: configuration.tcgTranslationCacheMB)
        let machine = try launch(commandLine, options: options, image: image, memoryFile: nil, stdin: state)
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
}
