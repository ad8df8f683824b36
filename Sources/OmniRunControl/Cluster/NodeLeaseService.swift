import Foundation
import Logging
import OmniRunStore
import ServiceLifecycle

/// Keeps this node's lease in the shared store: registers at start, renews every
/// `leaseRenewal` with its figures, follows its draining flag, and sweeps the sandboxes
/// of nodes whose lease ran out (`lost` after `lostGrace`).
struct NodeLeaseService: Service {
    let service: SandboxService
    let moves: PausedMoves
    let configuration: ServerConfiguration
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await renewLease() }
                // A draining node hands its paused sandboxes to other nodes of its region.
                group.addTask {
                    while !Task.isCancelled {
                        if await service.isDraining { await moves.moveAway() }
                        try await Task.sleep(for: configuration.nodeLeaseRenewal)
                    }
                }
            }
        }
    }

    private func renewLease() async throws {
        let started = nowMillis()
        do {
            var failures = 0
            while !Task.isCancelled {
                let leaseMillis = configuration.nodeLease.components.seconds * 1000
                let record = await service.nodeRecord(startedAt: started, leaseExpiresAt: nowMillis() + leaseMillis)
                do {
                    try await service.nodes.renew(record)
                    let stored = try await service.nodes.find(id: configuration.nodeID)
                    await service.setDraining(stored?.draining ?? false)
                    if failures > 0 { logger.info("node lease renewed again", metadata: ["node": "\(configuration.nodeID)"]) }
                    failures = 0
                } catch {
                    failures += 1
                    if failures == 1 || failures % 10 == 0 {
                        logger.warning("node lease not renewed", metadata: ["node": "\(configuration.nodeID)", "error": "\(error)"])
                    }
                }
                await service.endSandboxesOfDownNodes(grace: configuration.nodeLostGrace)
                try await Task.sleep(for: configuration.nodeLeaseRenewal)
            }
        }
    }
}
