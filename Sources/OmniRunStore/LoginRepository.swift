import OmniRunError

/// One sign-in email: the hashes of its code and link, its expiry and how many wrong
/// codes were tried against it.
public struct LoginChallengeRecord: Sendable, Equatable {
    public var id: String
    public var email: String
    public var ip: String
    public var codeHash: String
    public var linkHash: String
    public var createdAt: Int64
    public var expiresAt: Int64
    public var attempts: Int
    public var consumedAt: Int64?

    public init(
        id: String, email: String, ip: String, codeHash: String, linkHash: String, createdAt: Int64, expiresAt: Int64,
        attempts: Int = 0, consumedAt: Int64? = nil
    ) {
        self.id = id
        self.email = email
        self.ip = ip
        self.codeHash = codeHash
        self.linkHash = linkHash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.attempts = attempts
        self.consumedAt = consumedAt
    }
}

/// Sign-in challenges. Every change that decides a sign-in is one conditional
/// statement, so two racing verifications cannot both use a code.
public struct LoginRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    public func insert(_ challenge: LoginChallengeRecord) async throws {
        try await database.query(
            """
            INSERT INTO login_challenges (id, email, ip, code_hash, link_hash, created_at, expires_at, attempts, consumed_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(challenge.id), .text(challenge.email), .text(challenge.ip), .text(challenge.codeHash),
                .text(challenge.linkHash), .int(challenge.createdAt), .int(challenge.expiresAt), SQLValue(challenge.attempts),
                SQLValue(challenge.consumedAt),
            ])
    }

    /// Challenges sent to this email since `since` (rate limit).
    public func count(email: String, since: Int64) async throws -> Int {
        Int(
            try await database.query(
                "SELECT COUNT(*) AS n FROM login_challenges WHERE email = ? AND created_at > ?", [.text(email), .int(since)]
            ).first?.int("n") ?? 0)
    }

    /// Challenges requested from this address since `since` (rate limit).
    public func count(ip: String, since: Int64) async throws -> Int {
        Int(
            try await database.query(
                "SELECT COUNT(*) AS n FROM login_challenges WHERE ip = ? AND created_at > ?", [.text(ip), .int(since)]
            ).first?.int("n") ?? 0)
    }

    /// The newest challenge sent to this email (only the newest code counts).
    public func latest(email: String) async throws -> LoginChallengeRecord? {
        try await database.query(
            "SELECT * FROM login_challenges WHERE email = ? ORDER BY created_at DESC, id DESC LIMIT 1", [.text(email)]
        ).first.map(Self.record)
    }

    public func find(linkHash: String) async throws -> LoginChallengeRecord? {
        try await database.query("SELECT * FROM login_challenges WHERE link_hash = ?", [.text(linkHash)]).first.map(Self.record)
    }

    /// Takes one of the code's tries before the code is compared: one conditional statement,
    /// so any number of parallel verifications get no more than `maxAttempts` tries between
    /// them. Returns the tries used including this one, or nil when none is left (or the
    /// code is used or expired).
    public func takeAttempt(id: String, at now: Int64, maxAttempts: Int) async throws -> Int? {
        let rows = try await database.query(
            """
            UPDATE login_challenges SET attempts = attempts + 1
            WHERE id = ? AND consumed_at IS NULL AND expires_at > ? AND attempts < ?
            RETURNING attempts
            """, [.text(id), .int(now), SQLValue(maxAttempts)])
        return try rows.first.map { Int(try $0.int("attempts")) }
    }

    /// Uses a code whose try was taken with `takeAttempt`: true for the one call that used it.
    public func consumeCode(id: String, at now: Int64) async throws -> Bool {
        let rows = try await database.query(
            """
            UPDATE login_challenges SET consumed_at = ?
            WHERE id = ? AND consumed_at IS NULL AND expires_at > ?
            RETURNING id
            """, [.int(now), .text(id), .int(now)])
        return !rows.isEmpty
    }

    /// Counts a wrong code; returns the attempts made so far.
    public func recordFailure(id: String) async throws -> Int {
        let rows = try await database.query(
            "UPDATE login_challenges SET attempts = attempts + 1 WHERE id = ? RETURNING attempts", [.text(id)])
        return Int(try rows.first?.int("attempts") ?? 0)
    }

    /// Marks the challenge used, unless it is used, expired or locked already.
    /// Returns whether this call was the one that used it.
    public func consume(id: String, at now: Int64, maxAttempts: Int) async throws -> Bool {
        let rows = try await database.query(
            """
            UPDATE login_challenges SET consumed_at = ?
            WHERE id = ? AND consumed_at IS NULL AND expires_at > ? AND attempts < ?
            RETURNING id
            """, [.int(now), .text(id), .int(now), SQLValue(maxAttempts)])
        return !rows.isEmpty
    }

    /// Forgets challenges created before `before`.
    public func purge(before: Int64) async throws {
        try await database.query("DELETE FROM login_challenges WHERE created_at < ?", [.int(before)])
    }

    static func record(_ row: SQLRow) throws -> LoginChallengeRecord {
        LoginChallengeRecord(
            id: try row.string("id"), email: try row.string("email"), ip: try row.string("ip"),
            codeHash: try row.string("code_hash"), linkHash: try row.string("link_hash"), createdAt: try row.int("created_at"),
            expiresAt: try row.int("expires_at"), attempts: Int(try row.int("attempts")), consumedAt: row.optionalInt("consumed_at"))
    }
}
