import Foundation
import OmniRunCore
import OmniRunE2EE
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// The create and fork sagas: a sandbox (or its copies), the owner's vault opened into it,
/// its e2ee channel key and its network record (secure mode's token, host mask, egress
/// policy) come into being together or not at all — a step that fails kills what the
/// earlier steps made, so no sandbox is left running without its key or its record.
package struct SandboxCreation: Sendable {
    package let service: SandboxService
    package let vault: VaultService
    package let e2ee: E2EESessions
    package let exposures: ExposureService

    package init(service: SandboxService, vault: VaultService, e2ee: E2EESessions, exposures: ExposureService) {
        self.service = service
        self.vault = vault
        self.e2ee = e2ee
        self.exposures = exposures
    }

    /// What a create asks for beyond the sandbox itself.
    package struct Options: Sendable {
        /// E2EE (§12): the client's P-256 key (base64 DER SPKI); nil for a plain sandbox.
        package var clientPublicKey: String?
        /// Secure mode: the preview gateway asks for a traffic token.
        package var secure = false
        /// The `Host` the sandbox's servers see (`maskRequestHost`).
        package var maskRequestHost: String?

        package init(clientPublicKey: String? = nil, secure: Bool = false, maskRequestHost: String? = nil) {
            self.clientPublicKey = clientPublicKey
            self.secure = secure
            self.maskRequestHost = maskRequestHost
        }
    }

    /// A sandbox made, with what its creator is told once.
    package struct Created: Sendable {
        package var record: SandboxRecord
        /// The server's P-256 key of an e2ee sandbox (base64 DER SPKI).
        package var serverPublicKey: String?
        /// Secure mode's token (only its hash is kept).
        package var trafficToken: String?
    }

    /// Creates a sandbox with its key and network record. The e2ee handshake comes first,
    /// so a bad client key costs nothing.
    package func create(_ request: CreateSandboxRequest, options: Options, account: AccountRecord) async throws -> Created {
        let handshake = try options.clientPublicKey.map { try E2EEChannel.accept(clientPublicKey: $0) }
        if request.internet, let reason = await service.runtime.network.availability() {
            throw OmniRunError(.unavailable, "internet access is not available on this server: \(reason)")
        }
        var request = request
        // Vault values are opened only here, on their way into this account's sandbox.
        request.vaultVariables = request.vaultInject ? try await vault.environment(account) : nil
        let record = try await service.create(request, account: account)
        var created = Created(record: record)
        if let handshake {
            do {
                try await e2ee.register(record.id, channel: handshake.channel)
            } catch {
                // Never leave an e2ee sandbox running that has no key (it would be unreachable).
                try? await service.kill(record.id, account: account)
                throw OmniRunError(.unavailable, "the sandbox's e2ee key could not be stored; retry the create")
            }
            created.serverPublicKey = handshake.serverPublicKey
        }
        created.trafficToken = options.secure ? randomBytes(32).map { String(format: "%02x", $0) }.joined() : nil
        do {
            try await exposures.register(
                SandboxNetworkRecord(
                    sandboxID: record.id, trafficTokenHash: created.trafficToken.map(Secrets.sha256Hex),
                    maskRequestHost: options.maskRequestHost, internet: request.internet,
                    policy: try request.egress.map { try $0.storedForm() }))
        } catch {
            try? await service.kill(record.id, account: account)
            throw error
        }
        return created
    }

    /// One copy of a fork, with its own server key when the origin is e2ee.
    package struct Copy: Sendable {
        package var record: SandboxRecord
        package var serverPublicKey: String?
    }

    /// `count` copies of sandbox `id` as it is now (docs/fork.md). An e2ee sandbox's copies
    /// get keys of their own (an envelope for one never opens on another), so forking one
    /// needs the client's key; each copy answers like its origin otherwise (secure mode,
    /// host mask).
    package func fork(_ id: String, count: Int, clientPublicKey: String?, account: AccountRecord) async throws -> [Copy] {
        guard (1...SandboxService.maxForkCount).contains(count) else {
            throw OmniRunError(.invalidArgument, "count must be between 1 and \(SandboxService.maxForkCount)")
        }
        let record = try await service.record(id, account: account)
        let network = await exposures.networkSettings(record.id)
        if network?.internet == true {
            throw OmniRunError(.conflict, "a sandbox with internet access cannot be forked yet")
        }
        let hasChannel = await e2ee.channel(record.id) != nil
        let encrypted = hasChannel ? true : await e2ee.isLocked(record.id)
        if encrypted {
            guard let clientPublicKey, !clientPublicKey.isEmpty else {
                throw OmniRunError(
                    .invalidArgument,
                    "forking an e2ee sandbox needs clientPublicKey (base64 DER SPKI of an ECDH P-256 key): each copy gets its own key")
            }
            _ = try E2EEChannel.publicKey(clientPublicKey)
        } else if clientPublicKey != nil {
            throw OmniRunError(.invalidArgument, "clientPublicKey is only used when forking an e2ee sandbox")
        }
        let vaultVariables = record.vaultInject ? try await vault.environment(account) : nil
        let records = try await service.fork(id, count: count, account: account, vaultVariables: vaultVariables)
        var copies = records.map { Copy(record: $0) }
        for index in copies.indices {
            let copy = copies[index].record
            do {
                if encrypted, let clientPublicKey {
                    let handshake = try E2EEChannel.accept(clientPublicKey: clientPublicKey)
                    try await e2ee.register(copy.id, channel: handshake.channel)
                    copies[index].serverPublicKey = handshake.serverPublicKey
                }
                try await exposures.register(
                    SandboxNetworkRecord(
                        sandboxID: copy.id, trafficTokenHash: network?.trafficTokenHash, maskRequestHost: network?.maskRequestHost,
                        internet: false, policy: nil))
            } catch {
                for made in records { try? await service.kill(made.id, account: account) }
                throw OmniRunError(.unavailable, "the copies could not be registered; retry the fork: \(error)")
            }
        }
        return copies
    }

    /// Replaces a running sandbox's egress policy; new connections follow it at once.
    package func setNetworkPolicy(_ id: String, policy: EgressPolicy, account: AccountRecord) async throws {
        let record = try await service.record(id, account: account)
        let policy = try policy.validated()
        guard let sandboxID = SandboxID(record.id), record.state == .running else {
            throw OmniRunError(.conflict, "sandbox \(record.id) is \(record.state), not running")
        }
        guard service.runtime.network.hasNamespace(sandboxID) else {
            throw OmniRunError(.conflict, "sandbox \(record.id) has no internet access (create it with internet: true)")
        }
        try await service.runtime.network.apply(policy, to: sandboxID)
        try await exposures.setPolicy(record.id, policy: try policy.storedForm())
    }
}

extension EgressPolicy {
    /// How a policy is kept in the store.
    package func storedForm() throws -> String {
        String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
    }
}

extension CreateSandboxRequest {
    /// A name a sandbox's environment takes: a letter or `_`, then letters, digits and `_`
    /// (at most 256).
    package static func isEnvName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else {
            return false
        }
        return name.count <= 256 && name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }
}
