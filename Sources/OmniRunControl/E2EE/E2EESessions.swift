import Crypto
import Foundation
import Logging
import OmniRunE2EE
import OmniRunError
import OmniRunStore

/// The channel of every e2ee sandbox on this server, and the request nonces each has
/// admitted. A channel key lives in memory and, sealed under the master key, in the store
/// until its sandbox ends; it is never logged. Nonces are admitted through the store (one
/// conditional insert), so a captured envelope is refused on every route, by every server
/// on the store and after a restart, for as long as its nonce is among the sandbox's last
/// `replayWindow` requests. Envelopes with an `aad` are bound to their route as well.
package actor E2EESessions {
    /// How many request nonces each sandbox's store rows keep.
    package static let replayWindow = 16_384
    /// Trim a sandbox's nonces to the window after this many admissions.
    package static let trimEvery = 256

    private struct Session {
        package var channel: E2EEChannel
        package var admitted = 0
    }

    private let repository: E2EEKeyRepository
    private let sealer: E2EEKeySealer
    private let logger: Logger
    private var sessions: [String: Session] = [:]
    /// E2EE sandboxes whose stored key did not open (another master key): refused.
    private var locked: Set<String> = []

    package init(repository: E2EEKeyRepository, masterKey: SymmetricKey, logger: Logger) {
        self.repository = repository
        self.sealer = E2EEKeySealer(masterKey: masterKey)
        self.logger = logger
    }

    /// Stores a new sandbox's channel (sealed) and keeps it in memory.
    package func register(_ sandboxID: String, channel: E2EEChannel) async throws {
        let sealed = try sealer.seal(channel.keyBytes, sandboxID: sandboxID)
        try await repository.insert(sandboxID: sandboxID, sealedKey: sealed, at: nowMillis())
        sessions[sandboxID] = Session(channel: channel)
    }

    package func channel(_ sandboxID: String) -> E2EEChannel? {
        sessions[sandboxID]?.channel
    }

    /// Admits a request's nonce once: false when this sandbox has seen it, unless it was let
    /// go by `release` for a retry of this same route.
    package func admit(_ sandboxID: String, nonce: [UInt8], route: String) async throws -> Bool {
        guard sessions[sandboxID] != nil else { return false }
        let text = Data(nonce).base64EncodedString()
        guard try await repository.admitNonce(sandboxID: sandboxID, nonce: text, at: nowMillis(), route: route) else { return false }
        if var session = sessions[sandboxID] {
            session.admitted += 1
            sessions[sandboxID] = session
            if session.admitted % Self.trimEvery == 0 {
                try? await repository.trimNonces(sandboxID: sandboxID, keep: Self.replayWindow)
            }
        }
        return true
    }

    /// A request failed with a retryable 5xx: the SDK retries a POST once with the very same
    /// body, so its nonce is let go once, for the same method and target only.
    package func release(_ sandboxID: String, nonce: [UInt8], route: String) async {
        try? await repository.allowRetry(sandboxID: sandboxID, nonce: Data(nonce).base64EncodedString(), route: route)
    }

    /// The sandbox ended: its key goes from memory and from the store.
    package func remove(_ sandboxID: String) async {
        let known = sessions.removeValue(forKey: sandboxID) != nil
        guard known || locked.remove(sandboxID) != nil else { return }
        do {
            try await repository.delete(sandboxID: sandboxID)
            try await repository.deleteNonces(sandboxID: sandboxID)
        } catch {
            logger.warning("could not delete an ended sandbox's e2ee key", metadata: ["sandbox": "\(sandboxID)", "error": "\(error)"])
        }
    }

    /// After a start: reopens the keys of sandboxes that still live (running or paused) and
    /// deletes the others' (and their nonces). The live ones' nonces stay: replays stay refused.
    package func load(running: Set<String>) async throws {
        try? await repository.deleteNoncesOfEndedSandboxes()
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
    package func isLocked(_ sandboxID: String) -> Bool { locked.contains(sandboxID) }
}

/// Seals channel keys for the store with AES-256-GCM under a key derived from the master
/// key (its own HKDF info, apart from the vault's), bound to the sandbox id.
package struct E2EEKeySealer: Sendable {
    private let keyBytes: [UInt8]
    package static let format = "v1"

    package init(masterKey: SymmetricKey) {
        let derived = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: masterKey, info: Data("omnirun-e2ee-key-sealing-v1".utf8), outputByteCount: 32)
        keyBytes = derived.withUnsafeBytes { Array($0) }
    }

    package func seal(_ key: [UInt8], sandboxID: String) throws -> String {
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

    package func open(_ text: String, sandboxID: String) throws -> [UInt8] {
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
