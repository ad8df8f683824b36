import Foundation
import OmniRunError
import OmniRunStore

/// Each account's LLM spend against its cap. Spend is kept in millionths of a cent
/// and added with one atomic statement per request, so it is exact under concurrency.
package struct SpendLedger: Sendable {
    package let repository: SpendRepository
    package let defaultCapCents: Int64

    /// `GET /llm/v1/usage`: each figure in camelCase (the SDK's `getUsage`) and in
    /// snake_case (the hosted product's raw-HTTP examples read `spend_used_cents`).
    package struct Usage: Encodable, Sendable {
        package var spendUsedCents: Double
        package var spendCapCents: Int64
        package var remainingCents: Double

        package enum Keys: String, CodingKey {
            case spendUsedCents, spendCapCents, remainingCents
            case spend_used_cents, spend_cap_cents, remaining_cents
        }

        package func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(spendUsedCents, forKey: .spendUsedCents)
            try container.encode(spendCapCents, forKey: .spendCapCents)
            try container.encode(remainingCents, forKey: .remainingCents)
            try container.encode(spendUsedCents, forKey: .spend_used_cents)
            try container.encode(spendCapCents, forKey: .spend_cap_cents)
            try container.encode(remainingCents, forKey: .remaining_cents)
        }
    }

    package func usage(_ account: AccountRecord) async throws -> Usage {
        let (used, cap) = try await repository.spend(accountID: account.id)
        let capCents = cap ?? defaultCapCents
        let remaining = max(0, capCents * 1_000_000 - used)
        return Usage(spendUsedCents: Self.cents(used), spendCapCents: capCents, remainingCents: Self.cents(remaining))
    }

    /// Refuses (402) once the account has spent its cap.
    package func requireBudget(_ account: AccountRecord) async throws {
        let (used, cap) = try await repository.spend(accountID: account.id)
        let capCents = cap ?? defaultCapCents
        if used >= capCents * 1_000_000 {
            throw OmniRunError(
                .spendCapReached,
                "the LLM spend cap of \(capCents) cents is reached (\(Self.cents(used)) cents used); no more requests are proxied")
        }
    }

    package func charge(_ usage: LLMUsageRecord) async throws {
        try await repository.charge(usage)
    }

    /// Cents as a number, exact to the millionth.
    package static func cents(_ microcents: Int64) -> Double {
        Double(microcents) / 1_000_000
    }
}

/// Proxied requests per account per minute, over a sliding window (one node's view).
package actor RequestRateLimiter {
    private let perMinute: Int
    private var recent: [String: [Int64]] = [:]

    package init(perMinute: Int) {
        self.perMinute = perMinute
    }

    /// Counts a request, or throws 429 with the seconds until one is allowed again.
    package func admit(_ accountID: String, now: Int64 = nowMillis()) throws {
        guard perMinute > 0 else { return }
        var times = recent[accountID, default: []].filter { $0 > now - 60_000 }
        if times.count >= perMinute {
            recent[accountID] = times
            let retry = max(1, (times[0] + 60_000 - now + 999) / 1000)
            throw RateLimited(retryAfterSeconds: retry, limit: perMinute)
        }
        times.append(now)
        recent[accountID] = times
        if recent.count > 10_000 { recent = recent.filter { $0.value.last ?? 0 > now - 60_000 } }
    }

    package struct RateLimited: Error {
        package var retryAfterSeconds: Int64
        package var limit: Int

        package var error: OmniRunError {
            OmniRunError(
                .limitReached, "LLM request rate limit of \(limit) per minute reached; retry in \(retryAfterSeconds) s")
        }
    }
}
