import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// Paused sandboxes leaving a draining node. The draining node writes a sandbox's disk as
/// one file, asks a node of its region (up, not draining, the least busy) to take the
/// sandbox in, and waits; that node fetches the saved state and the disk (signed calls,
/// both checked by SHA-256), takes them into a folder of its own and, in one statement,
/// becomes the sandbox's node. Only then does the draining node delete its copy; until then
/// the sandbox stays paused where it was (a failed move is tried again at the next round).
package actor PausedMoves {
    private let service: SandboxService
    private let replication: TemplateReplication
    private let templates: TemplateRepository
    private let client: NodeClient
    private let logger: Logger
    /// Sandboxes this node is handing over: what it says about each, and its two files.
    private var outgoing: [String: (transfer: PausedTransfer, state: String, disk: String)] = [:]
    /// Sandboxes this node is taking in (bounded: the oldest finished ones are forgotten).
    private var arrivals: [String: ArrivalStatus] = [:]
    private var arrivalOrder: [String] = []
    private var movingAway = false

    package init(service: SandboxService, replication: TemplateReplication, templates: TemplateRepository, client: NodeClient, logger: Logger) {
        self.service = service
        self.replication = replication
        self.templates = templates
        self.client = client
        self.logger = logger
    }

    // MARK: the draining node

    /// Hands every paused sandbox of this node to another node of its region, one after the
    /// other; does nothing while an earlier round still runs.
    package func moveAway() async {
        guard !movingAway else { return }
        movingAway = true
        defer { movingAway = false }
        let node = service.configuration.nodeID
        guard let paused = try? await service.repository.paused(node: node), !paused.isEmpty else { return }
        for record in paused where !Task.isCancelled {
            guard let id = SandboxID(record.id) else { continue }
            do {
                guard let target = try await target() else {
                    logger.warning("no node of this region takes paused sandboxes; they stay here", metadata: ["sandbox": "\(id)"])
                    return
                }
                try await service.exclusive(id, kind: .move) { try await self.move(id, to: target) }
            } catch {
                logger.warning("moving a paused sandbox failed; it stays here", metadata: ["sandbox": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// The node of this region that takes a sandbox: up, not draining, the least busy.
    private func target() async throws -> NodeRecord? {
        let configuration = service.configuration
        let now = nowMillis()
        return try await service.nodes.list()
            .filter { $0.id != configuration.nodeID && $0.region == configuration.region && $0.isUp(at: now) && !$0.draining && $0.advertiseURL != nil }
            .min { (Double($0.running) + $0.load) / Double(max($0.vcpus, 1)) < (Double($1.running) + $1.load) / Double(max($1.vcpus, 1)) }
    }

    private func move(_ id: SandboxID, to target: NodeRecord) async throws {
        let runtime = service.runtime
        guard let record = try await service.current(id), record.state == .paused,
            record.nodeID == nil || record.nodeID == service.configuration.nodeID
        else { return }
        let started = ContinuousClock.now
        let (paused, disk) = try await runtime.exportPaused(id)
        defer {
            runtime.discardExport(id)
            outgoing[id.rawValue] = nil
        }
        let state = (ImageReceiver.size(ofFile: paused.stateFile), try ImageReceiver.sha256(ofFile: paused.stateFile))
        let diskFigures = (ImageReceiver.size(ofFile: disk), try ImageReceiver.sha256(ofFile: disk))
        let transfer = PausedTransfer(sandboxID: id.rawValue, paused: paused, template: record.template, state: state, disk: diskFigures)
        outgoing[id.rawValue] = (transfer, paused.stateFile, disk)
        logger.info(
            "moving a paused sandbox", metadata: ["sandbox": "\(id)", "to": "\(target.id)", "bytes": "\(state.0 + diskFigures.0)"])
        let asked = try await client.call("POST", "/internal/sandboxes/\(id)/adopt", on: target)
        guard asked.status == .accepted else {
            let text = String(buffer: try await asked.body.collect(upTo: 64 << 10))
            throw OmniRunError(.unavailable, "node \(target.id) did not take sandbox \(id): \(asked.status.code) \(text.prefix(300))")
        }
        let deadline = ContinuousClock.now + .seconds(1800)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            let answer = try await client.call("GET", "/internal/sandboxes/\(id)/adopt", on: target)
            let status = try JSONDecoder().decode(ArrivalStatus.self, from: Data(buffer: try await answer.body.collect(upTo: 64 << 10)))
            switch status.state {
            case "done":
                runtime.deletePaused(id)
                await service.forget(id)
                logger.info(
                    "paused sandbox moved", metadata: ["sandbox": "\(id)", "to": "\(target.id)", "took": "\(ContinuousClock.now - started)"])
                service.metrics.increment("omnirun_sandbox_moves_total")
                return
            case "moving":
                continue
            default:
                throw OmniRunError(.unavailable, "node \(target.id) could not take sandbox \(id): \(status.message ?? status.state)")
            }
        }
        throw OmniRunError(.timeout, "node \(target.id) took more than 30 minutes to take sandbox \(id)")
    }

    /// What this node says about a sandbox it is handing over (nil: none).
    package func outgoingTransfer(_ id: String) -> PausedTransfer? { outgoing[id]?.transfer }

    /// The saved state (`state`) or the disk (`disk`) of a sandbox being handed over.
    package func outgoingFile(_ id: String, part: String) -> String? {
        guard let entry = outgoing[id] else { return nil }
        switch part {
        case "state": return entry.state
        case "disk": return entry.disk
        default: return nil
        }
    }

    // MARK: the node taking a sandbox in

    /// Starts taking in paused sandbox `id` from node `from` (which must be the one calling).
    package func adopt(_ id: String, from node: String) async throws {
        guard let sandboxID = SandboxID(id) else { throw OmniRunError(.notFound, "no sandbox \(id.prefix(64))") }
        if arrivals[id]?.state == "moving" { return }
        guard let record = try await service.repository.find(id: id), record.state == .paused, record.nodeID == nil || record.nodeID == node
        else { throw OmniRunError(.conflict, "sandbox \(id) is not paused on node \(node)") }
        guard !(await service.isDraining) else { throw OmniRunError(.unavailable, "this node is draining itself") }
        remember(id, ArrivalStatus(state: "moving"))
        Task {
            do {
                try await self.receive(sandboxID, record: record, from: node)
                self.remember(id, ArrivalStatus(state: "done"))
            } catch {
                self.logger.warning("taking a paused sandbox in failed", metadata: ["sandbox": "\(id)", "from": "\(node)", "error": "\(error)"])
                self.remember(id, ArrivalStatus(state: "failed", message: (error as? OmniRunError)?.message ?? "\(error)"))
            }
        }
    }

    package func arrival(_ id: String) -> ArrivalStatus {
        arrivals[id] ?? ArrivalStatus(state: "failed", message: "this node is not taking sandbox \(id.prefix(64)) in")
    }

    private func remember(_ id: String, _ status: ArrivalStatus) {
        if arrivals[id] == nil { arrivalOrder.append(id) }
        arrivals[id] = status
        while arrivalOrder.count > 256, let oldest = arrivalOrder.first, arrivals[oldest]?.state != "moving" {
            arrivalOrder.removeFirst()
            arrivals[oldest] = nil
        }
    }

    private func receive(_ id: SandboxID, record: SandboxRecord, from node: String) async throws {
        let runtime = service.runtime
        guard let source = try await service.nodes.find(id: node), source.isUp(at: nowMillis()) else {
            throw OmniRunError(.unavailable, "node \(node) is down")
        }
        let described = try await client.call("GET", "/internal/sandboxes/\(id)/moving", on: source)
        guard described.status == .ok else { throw OmniRunError(.unavailable, "node \(node) answered \(described.status.code)") }
        let transfer = try JSONDecoder().decode(PausedTransfer.self, from: Data(buffer: try await described.body.collect(upTo: 1 << 20)))
            .validated(sandboxID: id.rawValue, template: record.template)
        // A custom template's files (its kernel and image) must be here for the resume.
        if let template = try await templates.find(name: runtime.catalog.resolve(record.template)) {
            try await replication.ensure(template)
        }
        let image = try runtime.catalog.image(for: record.template)
        let directory = try runtime.prepareArrival(id)
        do {
            try await takeIn(id, transfer: transfer, image: image, directory: directory, from: source)
        } catch {
            // Only what this arrival made goes: the folder it prepared.
            runtime.deletePaused(id)
            throw error
        }
        logger.info("paused sandbox taken in", metadata: ["sandbox": "\(id)", "from": "\(node)"])
    }

    private func takeIn(_ id: SandboxID, transfer: PausedTransfer, image: MachineImage, directory: String, from source: NodeRecord) async throws {
        let runtime = service.runtime
        let node = source.id
        try await fetch(id, part: "state", from: source, into: ImageReceiver(
            path: directory + "/paused.state", expectedBytes: transfer.stateBytes, expectedSHA256: transfer.stateSHA256, keepsDigest: false))
        let disk = directory + "/arriving/disk.qcow2"
        try await fetch(id, part: "disk", from: source, into: ImageReceiver(
            path: disk, expectedBytes: transfer.diskBytes, expectedSHA256: transfer.diskSHA256, keepsDigest: false))
        try await runtime.importPaused(id, paused: transfer.paused(image: image, directory: directory), disk: disk)
        let configuration = service.configuration
        guard try await service.repository.move(id: id.rawValue, from: node, to: configuration.nodeID, region: configuration.region) else {
            throw OmniRunError(.conflict, "sandbox \(id) was resumed, killed or moved while it was being taken in")
        }
    }

    private func fetch(_ id: SandboxID, part: String, from node: NodeRecord, into receiver: ImageReceiver) async throws {
        let answer = try await client.call("GET", "/internal/sandboxes/\(id)/moving/\(part)", on: node, deadline: .hours(24))
        guard answer.status == .ok else { throw OmniRunError(.unavailable, "node \(node.id) answered \(answer.status.code) for the \(part)") }
        try await receiver.receive(answer.body)
    }
}
