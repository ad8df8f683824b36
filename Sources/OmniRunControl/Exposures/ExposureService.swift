import Crypto
import Foundation
import Logging
import NIOCore
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// What `POST /sandboxes/{id}/exposures` asks for (wire protocol §10).
package struct ExposureRequest: Sendable {
    package var port: Int
    package var visibility: String
    package var ttlSeconds: Int64?
    package var slug: String?
    package var openPath: String
    package var preserveHost: Bool

    package init(
        port: Int, visibility: String, ttlSeconds: Int64? = nil, slug: String? = nil, openPath: String, preserveHost: Bool
    ) {
        self.port = port
        self.visibility = visibility
        self.ttlSeconds = ttlSeconds
        self.slug = slug
        self.openPath = openPath
        self.preserveHost = preserveHost
    }
}

/// Exposures (managed preview URLs) and the sandboxes' network settings that the preview
/// gateway applies: secure mode's traffic token and the Host their traffic carries.
package actor ExposureService {
    package nonisolated let repository: ExposureRepository
    package nonisolated let network: SandboxNetworkRepository
    package nonisolated let sandboxes: SandboxService
    package nonisolated let settings: PreviewSettings
    /// The gateway's port as clients reach it (in URLs).
    package nonisolated let publicPort: Int
    private let tokenKey: SymmetricKey
    private let logger: Logger
    private var networkCache: [String: SandboxNetworkRecord] = [:]
    /// When each exposure's last access was written (at most every few seconds).
    private var accessWritten: [String: Int64] = [:]
    /// Ports seen accepting connections lately, by "sandbox:port" (see `checkListening`).
    private var listeningSeen: [String: Int64] = [:]

    package init(
        repository: ExposureRepository, network: SandboxNetworkRepository, sandboxes: SandboxService, settings: PreviewSettings,
        publicPort: Int, tokenKey: SymmetricKey, logger: Logger
    ) {
        self.repository = repository
        self.network = network
        self.sandboxes = sandboxes
        self.settings = settings
        self.publicPort = publicPort
        self.tokenKey = tokenKey
        self.logger = logger
    }

    // MARK: sandbox network settings

    package func register(_ record: SandboxNetworkRecord) async throws {
        try await network.insert(record)
        networkCache[record.sandboxID] = record
    }

    /// Records a sandbox's new egress policy (JSON).
    package func setPolicy(_ sandboxID: String, policy: String?) async throws {
        try await network.setPolicy(sandboxID: sandboxID, policy: policy)
        networkCache[sandboxID]?.policy = policy
    }

    package func networkSettings(_ sandboxID: String) async -> SandboxNetworkRecord? {
        if let cached = networkCache[sandboxID] { return cached }
        guard let stored = try? await network.find(sandboxID: sandboxID) else { return nil }
        networkCache[sandboxID] = stored
        return stored
    }

    /// Called when a sandbox ends: its exposures turn `sandbox_stopped`.
    package func sandboxStopped(_ sandboxID: String) async {
        networkCache[sandboxID] = nil
        do {
            try await repository.sandboxStopped(sandboxID: sandboxID, at: nowMillis())
        } catch {
            logger.warning("exposures not marked stopped", metadata: ["sandbox": "\(sandboxID)", "error": "\(error)"])
        }
    }

    // MARK: exposures

    package func create(_ request: ExposureRequest, sandboxID: String, account: AccountRecord) async throws -> ExposureRecord {
        let sandbox = try await sandboxes.sandbox(sandboxID, account: account)
        let live = try await repository.list(sandboxID: sandboxID).filter { effectiveStatus($0) == "pending" || effectiveStatus($0) == "ready" }
        guard live.count < settings.maxExposuresPerSandbox else {
            throw OmniRunError(.limitReached, "a sandbox may have at most \(settings.maxExposuresPerSandbox) live exposures")
        }
        let ttl = request.ttlSeconds ?? settings.defaultTTLSeconds
        let now = nowMillis()
        let label = (request.slug ?? Self.randomWords()) + "-" + randomHex(4)
        var record = ExposureRecord(
            id: randomID("exp_"), sandboxID: sandboxID, accountID: account.id, port: request.port,
            hostname: label + (settings.region.map { "." + $0 } ?? "") + "." + settings.domain, visibility: request.visibility, status: "pending",
            openPath: request.openPath, preserveHost: request.preserveHost, createdAt: now, expiresAt: now + ttl * 1000,
            createdBy: account.email)
        if await Self.listening(sandbox, port: request.port, within: .seconds(2)) == true { record.status = "ready" }
        try await repository.insert(record)
        logger.info(
            "exposure created",
            metadata: ["sandbox": "\(sandboxID)", "exposure": "\(record.id)", "port": "\(request.port)", "status": "\(record.status)"])
        return record
    }

    package func list(sandboxID: String) async throws -> [ExposureRecord] {
        var result: [ExposureRecord] = []
        for record in try await repository.list(sandboxID: sandboxID) { result.append(await current(record)) }
        return result
    }

    package func get(_ id: String, sandboxID: String) async throws -> ExposureRecord {
        var record = await current(try await find(id, sandboxID: sandboxID))
        // `pending` until something listens on the port (the CLI polls for `ready`).
        if record.status == "pending", let sandbox = try? await sandboxes.sandbox(sandboxID, account: nil),
            await Self.listening(sandbox, port: record.port, within: .seconds(2)) == true
        {
            if try await repository.setStatus(id: id, status: "ready", at: nowMillis()) { record.status = "ready" }
        }
        return record
    }

    package func refresh(_ id: String, sandboxID: String, ttlSeconds: Int64?) async throws -> ExposureRecord {
        let record = await current(try await find(id, sandboxID: sandboxID))
        guard record.status != "revoked", record.status != "sandbox_stopped" else {
            throw OmniRunError(.conflict, "exposure \(id) is \(record.status) and cannot be refreshed")
        }
        let expiresAt = nowMillis() + (ttlSeconds ?? settings.defaultTTLSeconds) * 1000
        let status = record.status == "expired" ? "ready" : record.status
        try await repository.refresh(id: id, expiresAt: expiresAt, status: status)
        return try await get(id, sandboxID: sandboxID)
    }

    package func revoke(_ id: String, sandboxID: String) async throws {
        let record = await current(try await find(id, sandboxID: sandboxID))
        if record.isLive { try await repository.setStatus(id: id, status: "revoked", at: nowMillis()) }
    }

    private func find(_ id: String, sandboxID: String) async throws -> ExposureRecord {
        guard let record = try await repository.find(id: id), record.sandboxID == sandboxID else {
            throw OmniRunError(.notFound, "exposure \(id) not found")
        }
        return record
    }

    private func effectiveStatus(_ record: ExposureRecord) -> String {
        record.isLive && record.expiresAt <= nowMillis() ? "expired" : record.status
    }

    /// The record with its status brought up to date (expiry, the sandbox's end), persisted.
    package func current(_ record: ExposureRecord) async -> ExposureRecord {
        guard record.isLive else { return record }
        var record = record
        let now = nowMillis()
        // Only a sandbox that is gone stops its exposures for good (a paused one keeps them;
        // a store that failed to answer decides nothing).
        var ended = false
        do {
            _ = try await sandboxes.record(record.sandboxID, account: nil)
        } catch let error as OmniRunError where error.code == .notFound {
            ended = true
        } catch {}
        if ended {
            try? await repository.sandboxStopped(sandboxID: record.sandboxID, at: now)
            record.status = "sandbox_stopped"
            record.sandboxStoppedAt = now
        } else if record.expiresAt <= now {
            _ = try? await repository.setStatus(id: record.id, status: "expired", at: now)
            record.status = "expired"
        }
        return record
    }

    // MARK: URLs and tokens

    /// The token of a private exposure: derived from its id under the server's key, so it
    /// is never stored and every `get` can hand out the same `accessUrl`.
    package func accessToken(_ exposureID: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("exposure:\(exposureID)".utf8), using: tokenKey)
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    package var origin: String {
        let defaultPort = settings.scheme == "https" ? 443 : 80
        return "\(settings.scheme)://%@" + (publicPort == defaultPort ? "" : ":\(publicPort)")
    }

    package func url(_ record: ExposureRecord) -> String {
        origin.replacingOccurrences(of: "%@", with: record.hostname) + record.openPath
    }

    package func accessURL(_ record: ExposureRecord) -> String? {
        guard record.visibility == "private" else { return nil }
        let base = url(record)
        return base + (base.contains("?") ? "&" : "?") + "\(PreviewAccess.queryToken)=\(accessToken(record.id))"
    }

    /// Notes a request through the gateway: sandbox activity, and the exposure's last access.
    package func accessed(sandboxID: SandboxID, exposureID: String?) async {
        await sandboxes.touch(sandboxID)
        guard let exposureID else { return }
        let now = nowMillis()
        if let written = accessWritten[exposureID], now - written < 5000 { return }
        accessWritten[exposureID] = now
        try? await repository.touch(id: exposureID, at: now)
    }

    /// Whether the gateway may open a tunnel to `port`: the agent answers a refused port only
    /// once the request body has ended, which a client's open connection never does, so a
    /// port not seen listening in the last 30 s is checked first (a refusal costs one round trip).
    package func checkListening(_ sandbox: Sandbox, port: Int) async -> Bool {
        let key = "\(sandbox.id):\(port)"
        let now = nowMillis()
        if let seen = listeningSeen[key], now - seen < 30_000 { return true }
        switch await Self.listening(sandbox, port: port) {
        case false: return false
        case nil: return true  // not known: let this request through, check again next time
        case true:
            if listeningSeen.count > 4096 { listeningSeen.removeAll() }
            listeningSeen[key] = nowMillis()
            return true
        }
    }

    // MARK: helpers

    /// Whether something accepts connections on `port` in the guest (through the agent);
    /// nil when the guest has not said `within` (10 s for requests: a loaded host can take seconds to
    /// report even a refusal: an earlier 2 s guess sent requests into a refused port,
    /// where they waited for ever).
    package static func listening(_ sandbox: Sandbox, port: Int, within: Duration = .seconds(10)) async -> Bool? {
        await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                do {
                    try await sandbox.tunnel(port: port, upstream: [ByteBuffer]().asyncSequence) { _ in }
                    return true
                } catch {
                    return false
                }
            }
            // A server that keeps the probe's connection open after it ends says nothing.
            group.addTask {
                try? await Task.sleep(for: within)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    package static let adjectives = [
        "brisk", "calm", "bright", "clever", "eager", "gentle", "happy", "jolly", "keen", "lively", "merry", "nimble",
        "proud", "quiet", "swift", "witty",
    ]
    package static let nouns = [
        "lotus", "river", "falcon", "maple", "comet", "harbor", "meadow", "otter", "pebble", "quartz", "cedar", "ember",
        "willow", "tiger", "orbit", "breeze",
    ]

    package static func randomWords() -> String {
        "\(adjectives.randomElement()!)-\(nouns.randomElement()!)"
    }
}
