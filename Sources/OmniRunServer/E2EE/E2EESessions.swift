import Crypto
import Foundation
import Logging
import OmniRunError
import OmniRunStore

/// The channel of every e2ee sandbox on this server, with a window of the nonces it has
/// seen (requests and its own responses) so a replayed envelope is refused. A channel
/// key lives in memory and, sealed under the master key, in the store until its sandbox
/// ends; it is never logged.
actor E2EESessions {
    /// How many nonces each sandbox remembers (requests and responses).
    static let replayWindow = 16_384

    private struct Session {
        var channel: E2EEChannel
        var seen: Set<[UInt8]> = []
        var order: [[UInt8]] = []
        var head = 0

        mutating func remember(_ nonce: [UInt8]) {
            seen.insert(nonce)
            if order.count < E2EESessions.replayWindow {
                order.append(nonce)
            } else {
                seen.remove(order[head])
                order[head] = nonce
                head = (head + 1) % order.count
            }
        }
    }

    private let repository: E2EEKeyRepository
    private let sealer: E2EEKeySealer
    private let logger: Logger
    private var sessions: [String: Session] = [:]
    /// E2EE sandboxes whose stored key did not open (another master key): refused.
    private var locked: Set<String> = []

    init(repository: E2EEKeyRepository, masterKey: SymmetricKey, logger: Logger) {
        self.repository = repository
        self.sealer = E2EEKeySealer(masterKey: masterKey)
        self.logger = logger
    }

    /// Stores a new sandbox's channel (sealed) and keeps it in memory.
    func register(_ sandboxID: String, channel: E2EEChannel) async throws {
        let sealed = try sealer.seal(channel.keyBytes, sandboxID: sandboxID)
        try await repository.insert(sandboxID: sandboxID, sealedKey: sealed, at: nowMillis())
        sessions[sandboxID] = Session(channel: channel)
    }

    func channel(_ sandboxID: String) -> E2EEChannel? {
        sessions[sandboxID]?.channel
    }

    /// Admits a request's nonce once: false when this sandbox has seen it.
    func admit(_ sandboxID: String, nonce: [UInt8]) -> Bool {
        guard var session = sessions[sandboxID] else { return false }
        guard !session.seen.contains(nonce) else { return false }
        session.remember(nonce)
        sessions[sandboxID] = session
        return true
    }

    /// Forgets a request nonce whose request failed with a retryable 5xx: the SDK retries
    /// a POST once with the very same body, and that retry must not look like a replay.
    func release(_ sandboxID: String, nonce: [UInt8]) {
        guard var session = sessions[sandboxID], session.seen.remove(nonce) != nil else { return }
        if let index = session.order.firstIndex(of: nonce) {
            // A random 12-byte value no envelope can match (its slot stays in the ring).
            session.order[index] = []
        }
        sessions[sandboxID] = session
    }

    /// Records a nonce the server used for a response, so the envelope cannot be sent
    /// back as a request (both directions share one key in this protocol).
    func noteResponse(_ sandboxID: String, nonce: [UInt8]) {
        guard var session = sessions[sandboxID] else { return }
        session.remember(nonce)
        sessions[sandboxID] = session
    }

    /// The sandbox ended: its key goes from memory and from the store.
    func remove(_ sandboxID: String) async {
        let known = sessions.removeValue(forKey: sandboxID) != nil
        guard known || locked.remove(sandboxID) != nil else { return }
        do {
            try await repository.delete(sandboxID: sandboxID)
        } catch {
            logger.warning("could not delete an ended sandbox's e2ee key", metadata: ["sandbox": "\(sandboxID)", "error": "\(error)"])
        }
    }

    /// After a start: reopens the keys of sandboxes that still run and deletes the others'.
    /// The replay windows start empty (they are not stored).
    func load(running: Set<String>) async throws {
        for row in try await repository.all() {
            if running.contains(row.sandboxID), let key = try? sealer.open(row.sealedKey, sandboxID: row.sandboxID) {
                sessions[row.sandboxID] = Session(channel: E2EEChannel(keyBytes: key))
                continue
            }
            if running.contains(row.sandboxID) {
                logger.error(
                    "an e2ee key does not open with this server's master key; the sandbox cannot be reached",
                    metadata: ["sandbox": "\(row.sandboxID)"])
                // Keep refusing plaintext for it: an unusable channel is not a plaintext one.
                locked.insert(row.sandboxID)
                continue
            }
            try? await repository.delete(sandboxID: row.sandboxID)
        }
    }

    /// Whether this sandbox was created with e2ee but its stored key does not open.
    func isLocked(_ sandboxID: String) -> Bool { locked.contains(sandboxID) }
}

/// Seals channel keys for the store with AES-256-GCM under a key derived from the master
/// key (its own HKDF info, apart from the vault's), bound to the sandbox id.
struct E2EEKeySealer: Sendable {
    private let keyBytes: [UInt8]
    static let format = "v1"

    init(masterKey: SymmetricKey) {
        let derived = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: masterKey, info: Data("omnirun-e2ee-key-sealing-v1".utf8), outputByteCount: 32)
        keyBytes = derived.withUnsafeBytes { Array($0) }
    }

    func seal(_ key: [UInt8], sandboxID: String) throws -> String {
        do {
            let box = try AES.GCM.seal(Data(key), using: SymmetricKey(data: keyBytes), authenticating: Data("e2ee\n\(sandboxID)".utf8))
            guard let combined = box.combined else { throw OmniRunError(.internalError, "AES-GCM produced no output") }
            return Self.format + ":" + combined.base64EncodedString()
        } catch let error as OmniRunError {
            throw error
        } catch {
            throw OmniRunError(.internalError, "sealing an e2ee key failed")
        }
    }

    func open(_ text: String, sandboxID: String) throws -> [UInt8] {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0] == Self.format, let combined = Data(base64Encoded: String(parts[1])) else {
            throw OmniRunError(.internalError, "a stored e2ee key has an unknown format")
        }
        do {
            let key = try AES.GCM.open(
                try AES.GCM.SealedBox(combined: combined), using: SymmetricKey(data: keyBytes),
                authenticating: Data("e2ee\n\(sandboxID)".utf8))
            guard key.count == 32 else { throw OmniRunError(.internalError, "a stored e2ee key has the wrong size") }
            return Array(key)
        } catch {
            throw OmniRunError(.internalError, "a stored e2ee key does not open with this server's master key")
        }
    }
}
