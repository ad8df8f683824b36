import OmniRunError

/// One charged LLM request.
public struct LLMUsageRecord: Sendable, Equatable {
    public var id: String
    public var accountID: String
    public var sandboxID: String?
    public var model: String
    public var upstream: String
    public var promptTokens: Int64
    public var completionTokens: Int64
    public var costMicrocents: Int64
    /// `upstream` (the upstream reported the cost) or `price-table`.
    public var costSource: String
    public var createdAt: Int64

    public init(
        id: String, accountID: String, sandboxID: String?, model: String, upstream: String, promptTokens: Int64,
        completionTokens: Int64, costMicrocents: Int64, costSource: String, createdAt: Int64
    ) {
        self.id = id
        self.accountID = accountID
        self.sandboxID = sandboxID
        self.model = model
        self.upstream = upstream
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.costMicrocents = costMicrocents
        self.costSource = costSource
        self.createdAt = createdAt
    }
}

/// An account's LLM usage of one model on one UTC day, summed.
public struct LLMDailyUsage: Sendable, Equatable {
    /// Days since 1970-01-01 (UTC).
    public var day: Int64
    public var model: String
    public var requests: Int64
    public var promptTokens: Int64
    public var completionTokens: Int64
    public var costMicrocents: Int64

    public init(day: Int64, model: String, requests: Int64, promptTokens: Int64, completionTokens: Int64, costMicrocents: Int64) {
        self.day = day
        self.model = model
        self.requests = requests
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.costMicrocents = costMicrocents
    }
}

/// LLM spend per account. The running total is one atomic increment on the
/// account's row, so concurrent requests never lose a charge.
public struct SpendRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    /// Records the request and adds its cost to the account's total, together.
    public func charge(_ usage: LLMUsageRecord) async throws {
        try await database.transaction { tx in
            try await tx.query(
                """
                INSERT INTO llm_usage (id, account_id, sandbox_id, model, upstream, prompt_tokens, completion_tokens,
                    cost_microcents, cost_source, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(usage.id), .text(usage.accountID), SQLValue(usage.sandboxID), .text(usage.model), .text(usage.upstream),
                    .int(usage.promptTokens), .int(usage.completionTokens), .int(usage.costMicrocents), .text(usage.costSource),
                    .int(usage.createdAt),
                ])
            try await tx.query(
                "UPDATE accounts SET llm_spend_microcents = llm_spend_microcents + ? WHERE id = ?",
                [.int(usage.costMicrocents), .text(usage.accountID)])
        }
    }

    /// Every account's LLM spend together, in millionths of a cent (summed here: a
    /// PostgreSQL SUM of BIGINT is a NUMERIC).
    public func totalSpendMicrocents() async throws -> Int64 {
        try await database.query("SELECT llm_spend_microcents FROM accounts").reduce(0) {
            $0 + ($1.optionalInt("llm_spend_microcents") ?? 0)
        }
    }

    /// The account's spend so far and its own cap (nil: the server default).
    public func spend(accountID: String) async throws -> (microcents: Int64, capCents: Int64?) {
        guard
            let row = try await database.query(
                "SELECT llm_spend_microcents, llm_spend_cap_cents FROM accounts WHERE id = ?", [.text(accountID)]
            ).first
        else { throw OmniRunError(.notFound, "account \(accountID) not found") }
        return (row.optionalInt("llm_spend_microcents") ?? 0, row.optionalInt("llm_spend_cap_cents"))
    }

    public func setCap(accountID: String, cents: Int64?) async throws {
        try await database.query("UPDATE accounts SET llm_spend_cap_cents = ? WHERE id = ?", [SQLValue(cents), .text(accountID)])
    }

    /// The account's charged requests, newest first.
    public func usage(accountID: String, limit: Int) async throws -> [LLMUsageRecord] {
        try await database.query(
            "SELECT * FROM llm_usage WHERE account_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            [.text(accountID), SQLValue(limit)]
        ).map { row in
            LLMUsageRecord(
                id: try row.string("id"), accountID: try row.string("account_id"), sandboxID: row.optionalString("sandbox_id"),
                model: try row.string("model"), upstream: try row.string("upstream"), promptTokens: try row.int("prompt_tokens"),
                completionTokens: try row.int("completion_tokens"), costMicrocents: try row.int("cost_microcents"),
                costSource: try row.string("cost_source"), createdAt: try row.int("created_at"))
        }
    }

    /// The account's charged requests from `since` (milliseconds) on, summed per UTC day and
    /// model, oldest day first. The grouping is integer division of the millisecond
    /// timestamp (the same on SQLite and PostgreSQL); the sums are cast back to BIGINT (a
    /// PostgreSQL SUM of BIGINT is a NUMERIC).
    public func dailyUsage(accountID: String, since: Int64) async throws -> [LLMDailyUsage] {
        try await database.query(
            """
            SELECT created_at / 86400000 AS day, model, COUNT(*) AS requests,
                CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens,
                CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens,
                CAST(SUM(cost_microcents) AS BIGINT) AS cost_microcents
            FROM llm_usage WHERE account_id = ? AND created_at >= ?
            GROUP BY created_at / 86400000, model
            ORDER BY day, model
            """,
            [.text(accountID), .int(since)]
        ).map { row in
            LLMDailyUsage(
                day: try row.int("day"), model: try row.string("model"), requests: try row.int("requests"),
                promptTokens: try row.int("prompt_tokens"), completionTokens: try row.int("completion_tokens"),
                costMicrocents: try row.int("cost_microcents"))
        }
    }
}
