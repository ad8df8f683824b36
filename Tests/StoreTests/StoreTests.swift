import Foundation
import Logging
import OmniRunError
import OmniRunStore
import Testing

/// The same store tests against SQLite and, when `OMNIRUN_TEST_POSTGRES_URL` is set
/// (scripts/test.sh starts a real PostgreSQL), against PostgreSQL.
enum StoreBackends {
    static var urls: [String] {
        var urls = ["sqlite://" + FileManager.default.temporaryDirectory.path + "/omnirun-store-\(getpid())-\(UUID().uuidString.prefix(6)).db"]
        if let postgres = ProcessInfo.processInfo.environment["OMNIRUN_TEST_POSTGRES_URL"], !postgres.isEmpty {
            urls.append(postgres)
        }
        return urls
    }
}

@Suite("Store", .serialized)
struct StoreTests {
    @Test(arguments: StoreBackends.urls)
    func accountsKeysSandboxesAndTransactions(url: String) async throws {
        let database = try await Store.open(url: url, logger: Logger(label: "test"))
        defer { Task { await database.close() } }
        // Migrations are idempotent.
        try await Migrations.apply(to: database)
        let accounts = AccountRepository(database: database)
        let suffix = UUID().uuidString.prefix(8)
        let account = AccountRecord(id: "acc_\(suffix)", email: "a-\(suffix)@x.io", role: .user, concurrentLimit: 3, createdAt: 1)
        try await accounts.create(account)
        await #expect(throws: OmniRunError.self) { try await accounts.create(account) }
        try await accounts.addKey(id: "key_\(suffix)", accountID: account.id, name: "k", hash: "h\(suffix)", prefix: "omr_", expiresAt: nil)
        try await accounts.addKey(id: "key2_\(suffix)", accountID: account.id, name: "old", hash: "o\(suffix)", prefix: "omr_", expiresAt: 10)
        #expect(try await accounts.account(forKeyHash: "h\(suffix)", at: 100) == account)
        #expect(try await accounts.account(forKeyHash: "o\(suffix)", at: 100) == nil)
        #expect(try await accounts.revokeKey(id: "key_\(suffix)", accountID: account.id))
        #expect(try await accounts.account(forKeyHash: "h\(suffix)", at: 100) == nil)

        let sandboxes = SandboxRepository(database: database)
        let record = SandboxRecord(
            id: "sb_\(suffix.lowercased())", accountID: account.id, template: "playground", state: .running, createdAt: 5,
            timeoutSeconds: 300, expiresAt: 305_000, lastActivityAt: 5, metadata: ["suite": "x", "quote": "it's \"q\""],
            env: ["A": "1"], vaultInject: true, cpuCount: 1, memoryMB: 256, machineDirectory: "/d", machinePID: 42, nodeID: "n")
        try await sandboxes.insert(record)
        #expect(try await sandboxes.find(id: record.id) == record)
        #expect(try await sandboxes.countRunning(accountID: account.id) == 1)
        try await sandboxes.markEnded(id: record.id, reason: .timeout, at: 9)
        #expect(try await sandboxes.countRunning(accountID: account.id) == 0)
        let ended = try await sandboxes.ended(accountID: account.id, limit: 10, before: nil)
        #expect(ended.first?.endReason == .timeout && ended.first?.endedAt == 9)

        // Paused: listed, not counted as running, its disk summed; resumed with a new expiry.
        var pausable = record
        pausable.id = "sb_p\(suffix.lowercased())"
        pausable.autoPause = true
        try await sandboxes.insert(pausable)
        #expect(try await sandboxes.find(id: pausable.id)?.autoPause == true)
        try await sandboxes.markPaused(id: pausable.id, at: 20, bytes: 4096)
        let paused = try await sandboxes.find(id: pausable.id)
        #expect(paused?.state == .paused && paused?.pausedAt == 20 && paused?.pausedBytes == 4096 && paused?.machinePID == nil)
        #expect(try await sandboxes.countRunning(accountID: account.id) == 0)
        #expect(try await sandboxes.live(accountID: account.id).map(\.id) == [pausable.id])
        #expect(try await sandboxes.pausedUsage().bytes >= 4096)
        try await sandboxes.markResumed(id: pausable.id, pid: 77, expiresAt: 999, at: 30)
        let resumed = try await sandboxes.find(id: pausable.id)
        #expect(resumed?.state == .running && resumed?.machinePID == 77 && resumed?.expiresAt == 999 && resumed?.pausedBytes == nil)
        try await sandboxes.markPaused(id: pausable.id, at: 40, bytes: 1)
        try await sandboxes.markEnded(id: pausable.id, reason: .killed, at: 50)
        #expect(try await sandboxes.find(id: pausable.id)?.state == .ended)

        // A failed transaction leaves nothing behind.
        let other = AccountRecord(id: "acc2_\(suffix)", email: "b-\(suffix)@x.io", role: .user, concurrentLimit: 3, createdAt: 1)
        await #expect(throws: OmniRunError.self) {
            try await database.transaction { tx in
                try await AccountRepository(database: tx).create(other)
                throw OmniRunError(.conflict, "abort")
            }
        }
        #expect(try await accounts.find(id: other.id) == nil)
        let settings = SettingsRepository(database: database)
        let first = try await settings.valueOrInsert("k-\(suffix)", "one")
        #expect(try await settings.valueOrInsert("k-\(suffix)", "two") == first)
    }
}

@Suite("Store: sign-in, vault and spend", .serialized)
struct AccountStoreTests {
    @Test(arguments: StoreBackends.urls)
    func loginChallengesVaultsAndExactSpend(url: String) async throws {
        let database = try await Store.open(url: url, logger: Logger(label: "test"))
        defer { Task { await database.close() } }
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let accounts = AccountRepository(database: database)
        let account = AccountRecord(id: "acc_s\(suffix)", email: "s-\(suffix)@x.io", role: .user, concurrentLimit: 3, createdAt: 1)
        try await accounts.create(account)

        // A challenge is used once, and not after it expired or locked.
        let logins = LoginRepository(database: database)
        let challenge = LoginChallengeRecord(
            id: "lc_\(suffix)", email: account.email, ip: "127.0.0.1", codeHash: "c", linkHash: "l\(suffix)", createdAt: 100,
            expiresAt: 1000)
        try await logins.insert(challenge)
        #expect(try await logins.count(email: account.email, since: 50) == 1)
        #expect(try await logins.count(ip: "127.0.0.1", since: 50) >= 1)
        #expect(try await logins.latest(email: account.email) == challenge)
        #expect(try await logins.find(linkHash: "l\(suffix)")?.id == challenge.id)
        #expect(try await logins.recordFailure(id: challenge.id) == 1)
        #expect(!(try await logins.consume(id: challenge.id, at: 2000, maxAttempts: 5)), "expired")
        #expect(!(try await logins.consume(id: challenge.id, at: 500, maxAttempts: 1)), "locked")
        #expect(try await logins.consume(id: challenge.id, at: 500, maxAttempts: 5))
        #expect(!(try await logins.consume(id: challenge.id, at: 501, maxAttempts: 5)), "used")

        let vaults = VaultRepository(database: database)
        #expect(try await vaults.wrappedKey(accountID: account.id) == nil)
        let made = try await vaults.createVault(accountID: account.id, wrappedKey: "w1", at: 5)
        #expect(try await vaults.createVault(accountID: account.id, wrappedKey: "w2", at: 6).key == made.key)
        #expect(try await vaults.put(accountID: account.id, name: "A", sealed: "s1", at: 10))
        #expect(!(try await vaults.put(accountID: account.id, name: "A", sealed: "s2", at: 20)))
        #expect(try await vaults.list(accountID: account.id) == [VaultCredentialInfo(name: "A", createdAt: 10, updatedAt: 20)])
        #expect(try await vaults.sealedCredentials(accountID: account.id).map(\.sealed) == ["s2"])
        #expect(try await vaults.delete(accountID: account.id, name: "A"))
        #expect(!(try await vaults.delete(accountID: account.id, name: "A")))

        // Fifty charges at once add up exactly.
        let spend = SpendRepository(database: database)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask {
                    try await spend.charge(
                        LLMUsageRecord(
                            id: "u_\(suffix)_\(i)", accountID: account.id, sandboxID: nil, model: "m", upstream: "u",
                            promptTokens: 1, completionTokens: 1, costMicrocents: 123_457, costSource: "upstream", createdAt: Int64(i)))
                }
            }
            try await group.waitForAll()
        }
        #expect(try await spend.spend(accountID: account.id).microcents == 50 * 123_457)
        #expect(try await spend.usage(accountID: account.id, limit: 100).count == 50)
        try await spend.setCap(accountID: account.id, cents: 42)
        #expect(try await spend.spend(accountID: account.id).capCents == 42)
        #expect(try await accounts.find(id: account.id)?.spendMicrocents == 50 * 123_457)
    }
}

@Suite("Store: e2ee keys")
struct E2EEKeyStoreTests {
    @Test(arguments: StoreBackends.urls)
    func sealedKeysAreStoredListedAndDeleted(url: String) async throws {
        let database = try await Store.open(url: url, logger: Logger(label: "test"))
        defer { Task { await database.close() } }
        let keys = E2EEKeyRepository(database: database)
        let id = "sb_e2ee\(UUID().uuidString.prefix(8).lowercased())"
        try await keys.insert(sandboxID: id, sealedKey: "v1:c2VhbGVk", at: 7)
        // One key per sandbox.
        await #expect(throws: OmniRunError.self) { try await keys.insert(sandboxID: id, sealedKey: "v1:b3RoZXI=", at: 8) }
        #expect(try await keys.all().contains { $0.sandboxID == id && $0.sealedKey == "v1:c2VhbGVk" })
        try await keys.delete(sandboxID: id)
        #expect(try await !keys.all().contains { $0.sandboxID == id })
    }
}
