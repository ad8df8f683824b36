import Foundation
import OmniRunError
import OmniRunStore

/// `GET /llm/v1/usage/daily`: the caller's LLM proxy usage by UTC day and model, summed by
/// the store.
extension SpendLedger {
    /// The longest history one request may ask for, in days.
    package static let maxHistoryDays = 90
    package static let defaultHistoryDays = 30

    /// One model on one UTC day.
    package struct DailyItem: Encodable, Sendable, Equatable {
        /// `YYYY-MM-DD`, UTC.
        package var date: String
        package var model: String
        package var requests: Int64
        package var promptTokens: Int64
        package var completionTokens: Int64
        /// Exact to the millionth of a cent.
        package var costCents: Double
    }

    package struct DailyUsage: Encodable, Sendable {
        package var days: Int
        /// The first day counted and today (UTC), `YYYY-MM-DD`.
        package var from: String
        package var to: String
        /// The models used in the period, the costliest first.
        package var models: [String]
        package var totalCents: Double
        /// Only days and models with requests, oldest day first, models by name.
        package var items: [DailyItem]
    }

    /// `days` of the query: a whole number from 1 to `maxHistoryDays` (absent: the default).
    package static func historyDays(_ text: String?) throws -> Int {
        guard let text else { return defaultHistoryDays }
        guard text.utf8.count <= 2, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let days = Int(text), (1...maxHistoryDays).contains(days)
        else {
            throw OmniRunError(.invalidArgument, "days must be a whole number from 1 to \(maxHistoryDays)")
        }
        return days
    }

    /// The account's usage over the last `days` UTC days, today included.
    package func daily(_ account: AccountRecord, days: Int, now: Int64 = nowMillis()) async throws -> DailyUsage {
        guard (1...Self.maxHistoryDays).contains(days) else {
            throw OmniRunError(.invalidArgument, "days must be a whole number from 1 to \(Self.maxHistoryDays)")
        }
        let today = now / Self.dayMillis
        let first = today - Int64(days - 1)
        let rows = try await repository.dailyUsage(accountID: account.id, since: first * Self.dayMillis)
        var perModel: [String: Int64] = [:]
        for row in rows { perModel[row.model, default: 0] += row.costMicrocents }
        let models = perModel.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map(\.key)
        return DailyUsage(
            days: days, from: Self.utcDate(day: first), to: Self.utcDate(day: today), models: models,
            totalCents: Self.cents(perModel.values.reduce(0, +)),
            items: rows.map { row in
                DailyItem(
                    date: Self.utcDate(day: row.day), model: row.model, requests: row.requests, promptTokens: row.promptTokens,
                    completionTokens: row.completionTokens, costCents: Self.cents(row.costMicrocents))
            })
    }

    static let dayMillis: Int64 = 86_400_000

    /// Day `day` since 1970-01-01 as `YYYY-MM-DD` (UTC).
    package static func utcDate(day: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        return formatter.string(from: Date(timeIntervalSince1970: Double(day) * 86_400))
    }
}
