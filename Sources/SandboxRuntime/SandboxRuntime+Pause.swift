import AgentClient
import AgentProtocol
import Foundation
import OmniRunCore
import OmniRunError

/// Pause and resume: a sandbox saved whole (memory, devices, disk) into its own
/// folder with no VMM running, and brought back exactly as it was.
extension SandboxRuntime {
    /// The folder of a sandbox's machine (and, while paused, of its saved state).
    public nonisolated func machineDirectory(of id: SandboxID) -> String {
        configuration.dataDirectory + "/sandboxes/\(id)"
    }

    /// Saves a running sandbox and stops its machine. Its agent first syncs the guest's
    /// disks and, once the host has let go, parks (as before a template snapshot), so the
    /// resumed guest answers a fresh connection. On failure the sandbox keeps running if
    /// its machine still can; otherwise it is gone and the error says so.
    public func pause(_ id: SandboxID) async throws -> PausedMachine {
        guard let sandbox = sandboxes[id] else { throw OmniRunError(.notFound, "sandbox \(id) is not running") }
        let console = sandbox.machine.directory + "/console.log"
        let mark = Self.fileSize(console)
        try await sandbox.agent.prepareSnapshot()
        // From here on the machine's stop is ours, not a crash.
        sandboxes[id] = nil
        await sandbox.agent.close()
        do {
            try await Self.waitForParked(console: console, after: mark, name: "sandbox \(id)")
            // The agent's last words reach the console just before it blocks (as for snapshots).
            try await Task.sleep(for: .milliseconds(100))
            let paused = try await sandbox.machine.pause()
            // A sandbox with internet access gives its namespace back while paused (its
            // slot, devices and firewall); the resume builds a new one, identical as the
            // guest sees it (the same addresses and gateway), under the policy it then has.
            if network.hasNamespace(id) { await network.tearDown(id) }
            return paused
        } catch {
            logger.error("pausing a sandbox failed", metadata: ["sandbox": "\(id)", "error": "\(error)"])
            if !(await sandbox.machine.state.isTerminal),
                let agent = try? await GuestAgentClient.connect(
                    socketPath: sandbox.machine.agentSocketPath, name: "sandbox \(id)", timeout: configuration.agentTimeout,
                    logger: logger, giveUpIf: { await sandbox.machine.state.isTerminal ? "\(await sandbox.machine.state)" : nil })
            {
                let again = Sandbox(id: id, template: sandbox.template, machine: sandbox.machine, agent: agent)
                sandboxes[id] = again
                watch(again)
                throw OmniRunError(.unavailable, "pausing sandbox \(id) failed (it keeps running): \(error)")
            }
            await sandbox.machine.destroy()
            failures[id] = .crashed("pause failed: \(error)")
            throw OmniRunError(.machineFailed, "pausing sandbox \(id) failed and its machine was lost: \(error)")
        }
    }

    /// The saved state of a paused sandbox, if its folder holds a complete one.
    public nonisolated func pausedMachine(_ id: SandboxID) -> PausedMachine? {
        guard let data = FileManager.default.contents(atPath: PausedMachine.manifestPath(in: machineDirectory(of: id))) else {
            return nil
        }
        return try? JSONDecoder().decode(PausedMachine.self, from: data)
    }

    /// Brings a paused sandbox back: processes, open files, memory and disk as they
    /// were; the guest's clock (which stood still) is set to now. A sandbox that had
    /// internet access gets a new namespace under `egress` (its connections from before
    /// the pause are gone, as after any network outage). The saved state stays on disk
    /// until `discardPausedState` (the caller records the resume first).
    public func resume(_ id: SandboxID, template: String, egress: EgressPolicy? = nil) async throws -> Sandbox {
        if let running = sandboxes[id] { return running }
        guard let paused = pausedMachine(id) else {
            throw OmniRunError(.notFound, "sandbox \(id) has no saved state to resume from")
        }
        var options = MachineOptions(name: id.rawValue, directory: machineDirectory(of: id))
        let started = ContinuousClock.now
        if paused.hasNIC == true {
            options.nic = try await network.setUp(id, policy: egress)
        }
        let machine: any MachineInstance
        do {
            machine = try await createLimiter.run { [options] in try await self.driver.resume(paused, options: options) }
        } catch {
            if options.nic != nil { await network.tearDown(id) }
            throw error
        }
        do {
            // The whole memory streams in before the agent can answer.
            let agent = try await GuestAgentClient.connect(
                socketPath: machine.agentSocketPath, name: "sandbox \(id)", timeout: max(configuration.agentTimeout, .seconds(60)),
                logger: logger, giveUpIf: { await machine.state.isTerminal ? "\(await machine.state)" : nil })
            try await Self.setClock(agent, id: id)
            let sandbox = Sandbox(id: id, template: template, machine: machine, agent: agent)
            sandboxes[id] = sandbox
            failures[id] = nil
            watch(sandbox)
            logger.info("sandbox resumed", metadata: ["sandbox": "\(id)", "took": "\(ContinuousClock.now - started)"])
            return sandbox
        } catch {
            await machine.stopKeepingFiles()
            if options.nic != nil { await network.tearDown(id) }
            logger.error("resuming a sandbox failed", metadata: ["sandbox": "\(id)", "error": "\(error)"])
            throw OmniRunError(.unavailable, "resuming sandbox \(id) failed (it stays paused): \(error)")
        }
    }

    /// The guest's wall clock stood still while it was paused: set it to the host's.
    /// (An agent older than `/v1/clock` gets `date -s`, run as root.)
    private static func setClock(_ agent: GuestAgentClient, id: SandboxID) async throws {
        do {
            try await agent.setClock(unixTimeNanos: Int64(Date().timeIntervalSince1970 * 1_000_000_000))
        } catch let error as OmniRunError where error.code == .notFound {
            let now = String(format: "%.6f", Date().timeIntervalSince1970)
            let result = try await agent.run(ProcessStartRequest(shell: "date -u -s @\(now) >/dev/null", user: "root", timeoutMillis: 10_000))
            guard result.exitCode == 0 else {
                throw OmniRunError(.agentError, "setting the clock of sandbox \(id) failed: \(result.stderrText)")
            }
        }
    }

    /// Removes the saved state of a sandbox that runs again.
    public nonisolated func discardPausedState(_ id: SandboxID) {
        let directory = machineDirectory(of: id)
        try? FileManager.default.removeItem(atPath: PausedMachine.manifestPath(in: directory))
        try? FileManager.default.removeItem(atPath: directory + "/paused.state")
    }

    /// Removes a paused sandbox's folder: its saved state and its disk.
    public nonisolated func deletePaused(_ id: SandboxID) {
        try? FileManager.default.removeItem(atPath: machineDirectory(of: id))
        MachineSockets.removeOutsideFolder(machineDirectory(of: id), names: MachineSockets.names)
    }

    /// Bytes a folder (or a single file) occupies on disk (allocated blocks: sparse files
    /// count what they hold).
    public nonisolated static func diskUsage(of directory: String) -> Int64 {
        var total: Int64 = 0
        var top = stat()
        if lstat(directory, &top) == 0, (top.st_mode & S_IFMT) == S_IFREG { return Int64(top.st_blocks) * 512 }
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return 0 }
        for case let name as String in enumerator {
            var info = stat()
            if lstat(directory + "/" + name, &info) == 0 { total += Int64(info.st_blocks) * 512 }
        }
        return total
    }

    static func fileSize(_ path: String) -> UInt64 {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_size) : 0
    }

    /// Waits until the agent writes its parked line to the console after `offset`. A guest
    /// starved of CPU on a loaded host (TCG, several forks and builds at once) was seen to
    /// need more than 30 s to wind its streams down, and a pause that gives up loses the
    /// machine: so it waits up to 90 s.
    static func waitForParked(console: String, after offset: UInt64, name: String) async throws {
        let deadline = ContinuousClock.now + .seconds(90)
        while true {
            if let handle = FileHandle(forReadingAtPath: console) {
                let size = (try? handle.seekToEnd()) ?? 0
                try? handle.seek(toOffset: size >= offset ? offset : 0)
                let data = (try? handle.readToEnd()) ?? Data()
                try? handle.close()
                if String(decoding: data, as: UTF8.self).contains(AgentAPI.snapshotParkedMarker) { return }
            }
            guard ContinuousClock.now < deadline else {
                throw OmniRunError(.timeout, "the agent of \(name) did not park to be paused")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
