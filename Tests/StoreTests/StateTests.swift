import Foundation
import Logging
import OmniRunError
import OmniRunStore
import Testing

/// Sandbox states, account roles and end reasons are types; what the store holds are
/// their raw values, and a value the types do not know is an error, never a default.
@Suite("Stored states")
struct StateTests {
    @Test func endReasonsRoundTripThroughTheirStoredText() {
        let reasons: [EndReason] = [.killed, .timeout, .idle, .retention, .lost, .failed("pause"), .failed("exited with status 1")]
        for reason in reasons {
            #expect(EndReason(rawValue: reason.rawValue) == reason, "\(reason)")
        }
        #expect(EndReason.failed("fork").rawValue == "failed: fork")
        #expect(EndReason.failed("fork").kind == "failed")
        #expect(EndReason.idle.kind == "idle")
        // Text from an older server that is none of these is kept as a failure's words.
        #expect(EndReason(rawValue: "something else") == .failed("something else"))
        #expect(SandboxState.allCases.map(\.rawValue) == ["running", "paused", "ended"])
        #expect(SandboxState.running.isLive && SandboxState.paused.isLive && !SandboxState.ended.isLive)
        #expect(AccountRole(rawValue: "owner") == .owner && AccountRole(rawValue: "admin") == nil)
    }

    @Test(arguments: StoreBackends.urls)
    func anUnknownStoredStateIsAnErrorNotADefault(url: String) async throws {
        let database = try await Store.open(url: url, logger: Logger(label: "test"))
        defer { Task { await database.close() } }
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let accounts = AccountRepository(database: database)
        let account = AccountRecord(id: "acc_st\(suffix)", email: "st-\(suffix)@x.io", role: .owner, concurrentLimit: 3, createdAt: 1)
        try await accounts.create(account)
        #expect(try await accounts.find(id: account.id)?.role == .owner)
        let sandboxes = SandboxRepository(database: database)
        let record = SandboxRecord(
            id: "sb_st\(suffix)", accountID: account.id, template: "playground", state: .running, createdAt: 1,
            timeoutSeconds: 0, expiresAt: nil, lastActivityAt: 1, metadata: [:], env: [:], vaultInject: false, cpuCount: 1,
            memoryMB: 256)
        try await sandboxes.insert(record)
        try await sandboxes.markEnded(id: record.id, reason: .failed("pause"), at: 2)
        let ended = try await sandboxes.find(id: record.id)
        #expect(ended?.state == .ended && ended?.endReason == .failed("pause"))
        try await database.query("UPDATE sandboxes SET state = ? WHERE id = ?", [.text("hibernating"), .text(record.id)])
        await #expect(throws: OmniRunError.self) { _ = try await sandboxes.find(id: record.id) }
        try await database.query("DELETE FROM sandboxes WHERE id = ?", [.text(record.id)])
    }
}
