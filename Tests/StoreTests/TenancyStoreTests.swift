import Foundation
import Logging
import OmniRunError
import OmniRunStore
import Testing

/// What the store decides for tenant boundaries, on SQLite and PostgreSQL: a sign-in
/// code's tries, e2ee request nonces, paused sandboxes per account.
@Suite("Store: tenant boundaries", .serialized)
struct TenancyStoreTests {
    /// Fifty verifications at once against one code: exactly five get a try, numbered
    /// 1 to 5; the code is then spent, right or wrong.
    @Test(arguments: StoreBackends.urls)
    func parallelGuessesShareFiveTries(url: String) async throws {
        let database = try await Store.open(url: url, logger: Logger(label: "test"))
        defer { Task { await database.close() } }
        let logins = LoginRepository(database: database)
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let challenge = LoginChallengeRecord(
            id: "lc_\(suffix)", email: "race-\(suffix)@x.io", ip: "127.0.0.1", codeHash: "c", linkHash: "l-\(suffix)",
            createdAt: 1, expiresAt: Int64.max / 2)
        try await logins.insert(challenge)
        let tries = try await withThrowingTaskGroup(of: Int?.self) { group in
            for _ in 0..<50 {
                group.addTask { try await logins.takeAttempt(id: challenge.id, at: 10, maxAttempts: 5) }
            }
            var all: [Int?] = []
            for try await value in group { all.append(value) }
            return all
        }
        #expect(tries.compactMap { $0 }.sorted() == [1, 2, 3, 4, 5])
        #expect(tries.filter { $0 == nil }.count == 45)
        #expect(try await logins.takeAttempt(id: challenge.id, at: 10, maxAttempts: 5) == nil, "spent")
        #expect(try await logins.latest(email: challenge.email)?.attempts == 5)
        // A try taken, then the code used once only; expired and used codes give no try.
        var fresh = challenge
        fresh.id = "lc2_\(suffix)"
        fresh.linkHash = "l2-\(suffix)"
        fresh.expiresAt = 100
        try await logins.insert(fresh)
        #expect(try await logins.takeAttempt(id: fresh.id, at: 200, maxAttempts: 5) == nil, "expired")
        #expect(try await logins.takeAttempt(id: fresh.id, at: 50, maxAttempts: 5) == 1)
        #expect(try await logins.consumeCode(id: fresh.id, at: 50))
        #expect(!(try await logins.consumeCode(id: fresh.id, at: 51)))
        #expect(try await logins.takeAttempt(id: fresh.id, at: 52, maxAttempts: 5) == nil, "used")
    }

    /// A nonce is admitted once per sandbox; a retry is let in once, on its own route only;
    /// the window is trimmed to the newest; ended sandboxes' nonces go.
    @Test(arguments: StoreBackends.urls)
    func e2eeNoncesAreAdmittedOnce(url: String) async throws {
        let database = try await Store.open(url: url, logger: Logger(label: "test"))
        defer { Task { await database.close() } }
        let keys = E2EEKeyRepository(database: database)
        let sandbox = "sb_n\(UUID().uuidString.prefix(7).lowercased())"
        let route = "POST /sandboxes/\(sandbox)/commands"
        #expect(try await keys.admitNonce(sandboxID: sandbox, nonce: "n1", at: 1, route: route))
        #expect(!(try await keys.admitNonce(sandboxID: sandbox, nonce: "n1", at: 2, route: route)), "replay")
        #expect(!(try await keys.admitNonce(sandboxID: sandbox, nonce: "n1", at: 2, route: "POST /sandboxes/\(sandbox)/files")))
        #expect(try await keys.admitNonce(sandboxID: "sb_other", nonce: "n1", at: 2, route: route), "per sandbox")
        try await keys.allowRetry(sandboxID: sandbox, nonce: "n1", route: route)
        #expect(!(try await keys.admitNonce(sandboxID: sandbox, nonce: "n1", at: 3, route: "POST /sandboxes/\(sandbox)/files")),
            "a retry is for its own route only")
        #expect(try await keys.admitNonce(sandboxID: sandbox, nonce: "n1", at: 3, route: route), "the retry")
        #expect(!(try await keys.admitNonce(sandboxID: sandbox, nonce: "n1", at: 4, route: route)), "once")
        // Fifty parallel admissions of one nonce: one wins.
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<50 { group.addTask { try await keys.admitNonce(sandboxID: sandbox, nonce: "race", at: 5, route: route) } }
            var count = 0
            for try await won in group where won { count += 1 }
            return count
        }
        #expect(wins == 1)
        for index in 0..<20 { _ = try await keys.admitNonce(sandboxID: sandbox, nonce: "w\(index)", at: Int64(100 + index), route: route) }
        try await keys.trimNonces(sandboxID: sandbox, keep: 5)
        #expect(try await keys.nonceCount(sandboxID: sandbox) == 6, "the 5 newest and the one at the cut's instant")
        #expect(!(try await keys.admitNonce(sandboxID: sandbox, nonce: "w19", at: 200, route: route)))
        try await keys.deleteNonces(sandboxID: sandbox)
        try await keys.deleteNonces(sandboxID: "sb_other")
        #expect(try await keys.nonceCount(sandboxID: sandbox) == 0)
    }

    @Test(arguments: StoreBackends.urls)
    func pausedSandboxesPerAccountAndPastRetention(url: String) async throws {
        let database = try await Store.open(url: url, logger: Logger(label: "test"))
        defer { Task { await database.close() } }
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let accounts = AccountRepository(database: database)
        let account = AccountRecord(id: "acc_p\(suffix)", email: "p-\(suffix)@x.io", role: .user, concurrentLimit: 3, createdAt: 1)
        try await accounts.create(account)
        let sandboxes = SandboxRepository(database: database)
        for index in 0..<3 {
            try await sandboxes.insert(
                SandboxRecord(
                    id: "sb_\(index)\(suffix)", accountID: account.id, template: "playground", state: .running, createdAt: 1,
                    timeoutSeconds: 0, expiresAt: nil, lastActivityAt: 1, metadata: [:], env: [:], vaultInject: false, cpuCount: 1,
                    memoryMB: 256))
        }
        try await sandboxes.markPaused(id: "sb_0\(suffix)", at: 1_000, bytes: 10)
        try await sandboxes.markPaused(id: "sb_1\(suffix)", at: 5_000, bytes: 20)
        #expect(try await sandboxes.countPaused(accountID: account.id) == 2)
        let old = try await sandboxes.paused(before: 2_000).filter { $0.accountID == account.id }
        #expect(old.map(\.id) == ["sb_0\(suffix)"])
        try await sandboxes.markEnded(id: "sb_0\(suffix)", reason: .retention, at: 6_000)
        #expect(try await sandboxes.countPaused(accountID: account.id) == 1)
        #expect(try await sandboxes.paused(before: 2_000).filter { $0.accountID == account.id }.isEmpty)
    }
}
