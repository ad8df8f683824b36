import Foundation
import OmniRunStore
import Testing

/// `GET /llm/v1/usage/daily`: the caller's LLM spend by UTC day and model, summed by the
/// store; its `days` checked; another account's requests never counted.
@Suite("Control plane: LLM spend by day and model")
struct SpendHistoryTests {
    struct Daily: Decodable {
        struct Item: Decodable, Equatable {
            var date: String
            var model: String
            var requests: Int64
            var promptTokens: Int64
            var completionTokens: Int64
            var costCents: Double
        }
        var days: Int
        var from: String
        var to: String
        var models: [String]
        var totalCents: Double
        var items: [Item]
    }

    struct Me: Decodable {
        var id: String
    }

    static let day: Int64 = 86_400_000

    static func date(_ millis: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    func charge(
        _ spend: SpendRepository, account: String, model: String, microcents: Int64, at: Int64, tokens: Int64 = 10
    ) async throws {
        try await spend.charge(
            LLMUsageRecord(
                id: "u_" + UUID().uuidString.prefix(12).lowercased(), accountID: account, sandboxID: nil, model: model,
                upstream: "fake", promptTokens: tokens, completionTokens: tokens / 2, costMicrocents: microcents,
                costSource: "price-table", createdAt: at))
    }

    @Test func spendIsGroupedByDayAndModelForTheCallerOnly() async throws {
        try await ControlPlane.run { plane in
            let owner = try await plane.call(.get, "/auth/me").decode(Me.self).id
            let strangerKey = try await plane.createAccount("stranger@example.com")
            let stranger = try await plane.call(.get, "/auth/me", key: strangerKey).decode(Me.self).id
            let spend = SpendRepository(database: plane.database)
            let now = nowMillis()
            let today = now / Self.day * Self.day
            // Today: two requests of one model, one of another; yesterday's last millisecond;
            // forty days ago (outside the default 30); and the stranger's, today.
            try await charge(spend, account: owner, model: "test/a", microcents: 1_500_000, at: today)
            try await charge(spend, account: owner, model: "test/a", microcents: 250_001, at: now)
            try await charge(spend, account: owner, model: "test/b", microcents: 3_000_000, at: now)
            try await charge(spend, account: owner, model: "test/a", microcents: 7, at: today - 1)
            try await charge(spend, account: owner, model: "test/old", microcents: 900, at: today - 40 * Self.day)
            try await charge(spend, account: stranger, model: "test/secret", microcents: 99_000_000, at: now)

            let reply = try await plane.call(.get, "/llm/v1/usage/daily")
            #expect(reply.status == 200, "\(reply)")
            let daily = try reply.decode(Daily.self)
            #expect(daily.days == 30)
            #expect(daily.to == Self.date(now) && daily.from == Self.date(today - 29 * Self.day))
            #expect(daily.models == ["test/b", "test/a"], "the costliest first")
            #expect(
                daily.items == [
                    .init(date: Self.date(today - 1), model: "test/a", requests: 1, promptTokens: 10, completionTokens: 5, costCents: 0.000007),
                    .init(date: Self.date(now), model: "test/a", requests: 2, promptTokens: 20, completionTokens: 10, costCents: 1.750001),
                    .init(date: Self.date(now), model: "test/b", requests: 1, promptTokens: 10, completionTokens: 5, costCents: 3),
                ])
            #expect(abs(daily.totalCents - 4.750008) < 1e-9)
            #expect(!reply.text.contains("test/secret"))

            // A longer period reaches the old request; one day is today alone.
            let long = try await plane.call(.get, "/llm/v1/usage/daily?days=90").decode(Daily.self)
            #expect(long.items.first?.model == "test/old" && long.items.count == 4)
            let one = try await plane.call(.get, "/llm/v1/usage/daily?days=1").decode(Daily.self)
            #expect(one.items.map(\.model) == ["test/a", "test/b"] && one.from == one.to)

            // The stranger sees its own request only.
            let theirs = try await plane.call(.get, "/llm/v1/usage/daily?days=90", key: strangerKey).decode(Daily.self)
            #expect(theirs.items.map(\.model) == ["test/secret"] && theirs.totalCents == 99)
        }
    }

    @Test func badDaysAreClear400sAndAKeyIsNeeded() async throws {
        try await ControlPlane.run { plane in
            for days in ["0", "91", "-1", "abc", "1.5", "", "%2030", "1e1", "0x10", "99999999999999999999999", "30;drop", "%F0%9F%98%80"] {
                let reply = try await plane.call(.get, "/llm/v1/usage/daily?days=\(days)")
                #expect(reply.status == 400, "days=\(days): \(reply)")
                let error = try reply.decode(WireError.self)
                #expect(error.error == "invalid_argument" && error.message.contains("days must be"), "days=\(days): \(reply)")
            }
            #expect(try await plane.call(.get, "/llm/v1/usage/daily?days=90").status == 200)
            #expect(try await plane.call(.get, "/llm/v1/usage/daily?days=07").status == 200)
            #expect(try await plane.call(.get, "/llm/v1/usage/daily", key: "omr_not-a-key").status == 401)
            // The OpenAPI document (what schemathesis fuzzes) says what `days` may be.
            let document = try JSONSerialization.jsonObject(with: Data(try await plane.call(.get, "/openapi.json").body)) as? [String: Any]
            let paths = document?["paths"] as? [String: Any]
            let operation = (paths?["/llm/v1/usage/daily"] as? [String: Any])?["get"] as? [String: Any]
            let days = (operation?["parameters"] as? [[String: Any]])?.first { $0["name"] as? String == "days" }
            let schema = days?["schema"] as? [String: Any]
            #expect(schema?["type"] as? String == "integer" && schema?["minimum"] as? Int == 1 && schema?["maximum"] as? Int == 90, "\(days ?? [:])")
            #expect(days?["in"] as? String == "query" && days?["required"] as? Bool == false)
            // Nothing spent: an empty period, not an error.
            let empty = try await plane.call(.get, "/llm/v1/usage/daily?days=5").decode(Daily.self)
            #expect(empty.items.isEmpty && empty.models.isEmpty && empty.totalCents == 0 && empty.days == 5)
        }
    }
}
