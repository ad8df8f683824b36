import AgentClient
import Foundation
import OmniRunCore
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Re-attaching after a restart, without crash loops. Each attempt is written down in
/// the machine's folder (`reattach-attempts`) before it starts, marked done once the
/// agent answered, and crossed out once the server has run `reattachProbation` with the
/// sandbox (or stopped cleanly). The next start reads how the last one ended: a re-attach
/// still under way when the server died counts against the sandbox more than a server
/// dying during a probation (several sandboxes share one). A sandbox with
/// `interruptedStrikes` re-attaches cut short in a row, or `probationStrikes` probations,
/// is not tried again (the caller records it `lost`), so a guest that can crash or hang
/// the server cannot keep it down.
extension SandboxRuntime {
    /// Starts in a row that may die while re-attaching a sandbox.
    public static let interruptedStrikes = 2
    /// Starts in a row that may die within a re-attached sandbox's probation.
    public static let probationStrikes = 3
    /// How long the server must keep running with a re-attached sandbox before the
    /// attempt counts as a success.
    public static let reattachProbation: Duration = .seconds(30)
    static let reattachMarker = "reattach-attempts"

    /// What a sandbox's marker says: the phase the last start reached and the strikes so far.
    struct ReattachRecord: Equatable {
        enum Phase: String { case attaching, probation }
        var phase: Phase
        var interrupted: Int
        var unsettled: Int

        var text: String { "\(phase.rawValue) \(interrupted) \(unsettled)\n" }

        /// The strikes of a marker left by a start that died: its phase counts once more.
        /// Anything unreadable counts as exhausted.
        static func strikes(from text: String?) -> (interrupted: Int, unsettled: Int) {
            guard let text else { return (0, 0) }
            let words = text.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
            guard words.count == 3, let phase = Phase(rawValue: words[0]), let interrupted = Int(words[1]),
                let unsettled = Int(words[2]), interrupted >= 0, unsettled >= 0
            else { return (interruptedStrikes, probationStrikes) }
            let (i, u) = (min(interrupted, interruptedStrikes), min(unsettled, probationStrikes))
            return phase == .attaching ? (i + 1, u) : (i, u + 1)
        }
    }

    /// Re-attaches to a sandbox whose machine outlived an earlier server process.
    public func reattach(id: SandboxID, template: String, pid: Int32) async throws -> Sandbox {
        let image = try catalog.image(for: template)
        let directory = machineDirectory(of: id)
        let marker = directory + "/" + Self.reattachMarker
        let previous = FileManager.default.contents(atPath: marker).flatMap { $0.count <= 64 ? String(decoding: $0, as: UTF8.self) : "" }
        let strikes = ReattachRecord.strikes(from: previous)
        guard strikes.interrupted < Self.interruptedStrikes else {
            throw OmniRunError(
                .machineFailed,
                "the server stopped \(strikes.interrupted) times in a row while re-attaching sandbox \(id); it is not re-attached again")
        }
        guard strikes.unsettled < Self.probationStrikes else {
            throw OmniRunError(
                .machineFailed,
                "the server stopped \(strikes.unsettled) times in a row within \(Self.reattachProbation) of re-attaching sandbox \(id); "
                    + "it is not re-attached again")
        }
        var record = ReattachRecord(phase: .attaching, interrupted: strikes.interrupted, unsettled: strikes.unsettled)
        guard FileManager.default.createFile(atPath: marker, contents: Data(record.text.utf8)) else {
            throw OmniRunError(.machineFailed, "cannot record the re-attach of sandbox \(id) in \(directory)")
        }
        let machine = try await driver.attach(
            image: image, options: MachineOptions(name: id.rawValue, directory: directory), pid: pid)
        do {
            // A sandbox adopted from the pool may still have its CPUs stopped.
            try? await machine.continueCPUs()
            let agent = try await GuestAgentClient.connect(
                socketPath: machine.agentSocketPath, name: "sandbox \(id)", timeout: configuration.agentTimeout,
                logger: logger, giveUpIf: { await machine.state.isTerminal ? "\(await machine.state)" : nil })
            record.phase = .probation
            _ = FileManager.default.createFile(atPath: marker, contents: Data(record.text.utf8))
            let sandbox = Sandbox(id: id, template: image.template, machine: machine, agent: agent)
            sandboxes[id] = sandbox
            watch(sandbox)
            logger.info("sandbox re-attached", metadata: ["sandbox": "\(id)", "pid": "\(pid)"])
            Task { [weak self] in
                try? await Task.sleep(for: Self.reattachProbation)
                await self?.settleReattach(sandbox)
            }
            return sandbox
        } catch {
            await machine.destroy()
            throw error
        }
    }

    /// The probation of a re-attached sandbox is over: its attempt is crossed out.
    func settleReattach(_ sandbox: Sandbox) {
        guard sandboxes[sandbox.id] === sandbox else { return }
        unlink(machineDirectory(of: sandbox.id) + "/" + Self.reattachMarker)
    }

    /// A clean stop: the sandboxes re-attached by this process did not bring it down.
    public func settleAllReattaches() {
        for id in sandboxes.keys { unlink(machineDirectory(of: id) + "/" + Self.reattachMarker) }
    }
}
