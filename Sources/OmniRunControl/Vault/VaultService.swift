import Crypto
import Foundation
import Logging
import OmniRunError
import OmniRunStore

/// Each account's credentials: names in the clear, values sealed (see `VaultCipher`).
/// Values are only ever opened to be written into the account's own sandboxes.
package struct VaultService: Sendable {
    package let repository: VaultRepository
    package let cipher: VaultCipher
    package static let maxValueBytes = 64 << 10
    package static let maxCredentials = 256
    package static let maxNameLength = 128
    /// Credentials one bulk `POST /vault/credentials` may carry.
    package static let maxBulk = 64

    /// Creates the account's vault (its data key) unless it exists. Idempotent.
    @discardableResult
    package func initialize(_ account: AccountRecord) async throws -> Int64 {
        try await dataKey(account).createdAt
    }

    package func count(_ account: AccountRecord) async throws -> Int {
        try await repository.count(accountID: account.id)
    }

    private func dataKey(_ account: AccountRecord) async throws -> (key: SymmetricKey, createdAt: Int64) {
        let stored: (key: String, createdAt: Int64)
        if let existing = try await repository.wrappedKey(accountID: account.id) {
            stored = existing
        } else {
            stored = try await repository.createVault(
                accountID: account.id, wrappedKey: try cipher.newWrappedDataKey(accountID: account.id), at: nowMillis())
        }
        return (try cipher.unwrap(stored.key, accountID: account.id), stored.createdAt)
    }

    package static func validate(name: String) throws {
        guard name.count <= maxNameLength, CreateSandboxRequest.isEnvName(name) else {
            throw OmniRunError(
                .invalidArgument,
                "credential keys are environment variable names (letters, digits and '_', not starting with a digit, at most \(maxNameLength) characters)")
        }
    }

    /// Stores or replaces a credential; returns whether it was new.
    package func put(_ account: AccountRecord, name: String, value: String) async throws -> (created: Bool, info: VaultCredentialInfo) {
        try Self.validate(name: name)
        guard value.utf8.count <= Self.maxValueBytes else {
            throw OmniRunError(.payloadTooLarge, "a credential value may be at most \(Self.maxValueBytes) bytes")
        }
        let existing = try await repository.list(accountID: account.id)
        if !existing.contains(where: { $0.name == name }), existing.count >= Self.maxCredentials {
            throw OmniRunError(.limitReached, "a vault holds at most \(Self.maxCredentials) credentials")
        }
        let key = try await dataKey(account).key
        let sealed = try cipher.seal(value: value, name: name, accountID: account.id, dataKey: key)
        let created = try await repository.put(accountID: account.id, name: name, sealed: sealed, at: nowMillis())
        let info = try await repository.list(accountID: account.id).first { $0.name == name }
        guard let info else { throw OmniRunError(.conflict, "the credential \(name) was removed while it was stored") }
        return (created, info)
    }

    /// Stores several credentials; every name and value is checked, and the vault's room,
    /// before the first is written. Returns how many were new and how many replaced.
    package func putAll(_ account: AccountRecord, _ credentials: [String: String]) async throws -> (created: Int, updated: Int) {
        guard !credentials.isEmpty else { throw OmniRunError(.invalidArgument, "credentials is empty") }
        guard credentials.count <= Self.maxBulk else {
            throw OmniRunError(.invalidArgument, "at most \(Self.maxBulk) credentials can be stored in one request")
        }
        for (name, value) in credentials {
            try Self.validate(name: name)
            guard value.utf8.count <= Self.maxValueBytes else {
                throw OmniRunError(.payloadTooLarge, "a credential value may be at most \(Self.maxValueBytes) bytes (\(name))")
            }
        }
        let existing = Set(try await repository.list(accountID: account.id).map(\.name))
        let new = credentials.keys.filter { !existing.contains($0) }.count
        guard existing.count + new <= Self.maxCredentials else {
            throw OmniRunError(.limitReached, "a vault holds at most \(Self.maxCredentials) credentials")
        }
        var created = 0
        for (name, value) in credentials.sorted(by: { $0.key < $1.key }) {
            if try await put(account, name: name, value: value).created { created += 1 }
        }
        return (created, credentials.count - created)
    }

    package func list(_ account: AccountRecord) async throws -> [VaultCredentialInfo] {
        try await repository.list(accountID: account.id)
    }

    package func delete(_ account: AccountRecord, name: String) async throws {
        try Self.validate(name: name)
        guard try await repository.delete(accountID: account.id, name: name) else {
            throw OmniRunError(.notFound, "no credential named \(name) in this vault")
        }
    }

    /// Every credential, opened, for a sandbox of this account.
    package func environment(_ account: AccountRecord) async throws -> [String: String] {
        let key = try await dataKey(account).key
        var result: [String: String] = [:]
        for (name, sealed) in try await repository.sealedCredentials(accountID: account.id) {
            result[name] = try cipher.open(sealed: sealed, name: name, accountID: account.id, dataKey: key)
        }
        return result
    }
}
