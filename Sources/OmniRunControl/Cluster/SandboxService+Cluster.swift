import Foundation
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// The sandboxes' side of a cluster sharing one database: the account's limit held
/// exactly across nodes, drains, and the sandboxes of nodes that went down.
extension SandboxService {
    /// How long a create may hold its place before the store forgets it (its node died
    /// mid-create): longer than any create takes.
    static let admissionLifetimeMillis: Int64 = 15 * 60 * 1000

    /// A draining node refuses new sandboxes (its running ones carry on).
    func checkTakesSandboxes() throws {
        guard !draining else {
            throw OmniRunError(.unavailable, "node \(configuration.nodeID) is draining: it takes no new sandboxes; try another node")
        }
    }

    /// Takes `count` of the account's places (every node's running sandboxes and creates
    /// count); returns the place to give back once the sandboxes are recorded or failed.
    func admit(_ account: AccountRecord, count: Int) async throws -> String {
        let place = "adm_" + UUID().uuidString.lowercased()
        let now = nowMillis()
        let admitted = try await nodes.admit(
            accountID: account.id, limit: account.concurrentLimit, count: count, reservation: place, node: configuration.nodeID,
            expiresAt: now + Self.admissionLifetimeMillis, now: now)
        guard admitted else {
            throw OmniRunError(
                .sandboxLimit,
                count == 1
                    ? "concurrent sandbox limit reached: \(account.concurrentLimit) sandboxes may run at once for this account"
                    : "concurrent sandbox limit reached: \(count) more would exceed the \(account.concurrentLimit) sandboxes this account may run at once")
        }
        return place
    }

    func release(_ place: String) async {
        do {
            try await nodes.release(reservation: place)
        } catch {
            logger.warning("a create's place was not given back (it lapses on its own)", metadata: ["place": "\(place)", "error": "\(error)"])
        }
    }

    /// This node's record as it is now: capacity, load, the templates it holds snapshots of.
    package func nodeRecord(startedAt: Int64, leaseExpiresAt: Int64) async -> NodeRecord {
        var templates: [String] = []
        for template in runtime.catalog.templates() where await runtime.snapshotState(of: template) == .ready {
            templates.append(template)
        }
        return NodeRecord(
            id: configuration.nodeID, region: configuration.region, advertiseURL: configuration.advertiseURL, startedAt: startedAt,
            leaseExpiresAt: leaseExpiresAt, vcpus: HostFacts.cpuCount, memoryMB: HostFacts.memoryMB,
            diskMB: HostFacts.freeDiskMB(configuration.dataDirectory), running: await runtime.running.count, templates: templates,
            load: HostFacts.loadAverage, previewPort: configuration.preview.listeningPort)
    }

    /// Ends as `lost` the sandboxes of nodes whose lease ran out more than `grace` ago
    /// (each by whichever node gets there first) and tells the lifecycle (webhook `error`,
    /// reason `lost`).
    package func endSandboxesOfDownNodes(grace: Duration) async {
        let now = nowMillis()
        let graceMillis = grace.components.seconds * 1000
        do {
            try await nodes.releaseExpired(now: now)
            let lost = try await repository.endSandboxesOfDownNodes(expiredBefore: now - graceMillis, at: now)
            for record in lost {
                logger.warning(
                    "sandbox lost with its node", metadata: ["sandbox": "\(record.id)", "node": "\(record.nodeID ?? "")"])
                metrics.increment("omnirun_sandboxes_lost_total")
                await publish(.ended(.lost), record)
            }
        } catch {
            logger.warning("the sweep of down nodes failed", metadata: ["error": "\(error)"])
        }
    }

    package func setDraining(_ draining: Bool) {
        self.draining = draining
    }

    package var isDraining: Bool { draining }

    /// Forgets a sandbox that another node holds now (its paused state moved there).
    package func forget(_ id: SandboxID) {
        recordCache[id] = nil
        activity[id] = nil
    }
}

/// What a node says about its host in its lease.
enum HostFacts {
    static var cpuCount: Int { ProcessInfo.processInfo.activeProcessorCount }
    /// Memory available for new sandboxes (`MemAvailable`), MiB.
    static var memoryMB: Int {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let kib = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return kib >> 10
        }
        return 0
    }

    static func freeDiskMB(_ path: String) -> Int {
        guard let attributes = try? FileManager.default.attributesOfFileSystem(forPath: path),
            let free = attributes[.systemFreeSize] as? NSNumber
        else { return 0 }
        return Int(clamping: free.int64Value >> 20)
    }

    static var loadAverage: Double {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8),
            let first = text.split(separator: " ").first, let value = Double(first), value.isFinite
        else { return 0 }
        return value
    }
}
