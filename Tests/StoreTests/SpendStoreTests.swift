import Foundation
import Logging
import OmniRunStore
import Testing

/// LLM usage summed per UTC day and model by the store, on SQLite and PostgreSQL alike.
@Suite("Store: LLM usage by day")
struct SpendStoreTests {
    @Test(arguments: StoreBackends.urls)
    func usageIsSummedPerUTCDayAndModel(url: String) async throws {
        let database = try await Store.open(url: url, logger: Logger(label: "test"))
        defer { Task { await database.close() } }
        let accounts = AccountRepository(database: database)
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let mine = AccountRecord(id: "acc_d\(suffix)", email: "d-\(suffix)@x.io", role: .user, concurrentLimit: 3, createdAt: 1)
        let theirs = AccountRecord(id: "acc_e\(suffix)", email: "e-\(suffix)@x.io", role: .user, concurrentLimit: 3, createdAt: 1)
        try await accounts.create(mine)
        try await accounts.create(theirs)
        let spend = SpendRepository(database: database)
        let day: Int64 = 86_400_000
        // Day 20000 (2024-10-04): its first and last millisecond are one day; the next
        // millisecond is the next day. Costs past 2^31 must survive PostgreSQL's NUMERIC sum.
        let rows: [(String, String, Int64, Int64)] = [
            (mine.id, "m/a", 20_000 * day, 3_000_000_000), (mine.id, "m/a", 20_001 * day - 1, 3_000_000_000),
            (mine.id, "m/b", 20_000 * day + 5, 1), (mine.id, "m/a", 20_001 * day, 2),
            (mine.id, "m/a", 19_999 * day, 100), (theirs.id, "m/a", 20_000 * day, 555),
        ]
        for (index, row) in rows.enumerated() {
            try await spend.charge(
                LLMUsageRecord(
                    id: "ud_\(suffix)_\(index)", accountID: row.0, sandboxID: nil, model: row.1, upstream: "u",
                    promptTokens: Int64(index + 1), completionTokens: 1, costMicrocents: row.3, costSource: "upstream", createdAt: row.2))
        }
        let daily = try await spend.dailyUsage(accountID: mine.id, since: 20_000 * day)
        #expect(
            daily == [
                LLMDailyUsage(day: 20_000, model: "m/a", requests: 2, promptTokens: 3, completionTokens: 2, costMicrocents: 6_000_000_000),
                LLMDailyUsage(day: 20_000, model: "m/b", requests: 1, promptTokens: 3, completionTokens: 1, costMicrocents: 1),
                LLMDailyUsage(day: 20_001, model: "m/a", requests: 1, promptTokens: 4, completionTokens: 1, costMicrocents: 2),
            ])
        #expect(try await spend.dailyUsage(accountID: theirs.id, since: 0).map(\.costMicrocents) == [555])
        #expect(try await spend.dailyUsage(accountID: mine.id, since: 20_002 * day).isEmpty)
    }
}
