/// The schema, as ordered migrations applied once each (recorded in `schema_migrations`).
/// Only portable SQL: TEXT, BIGINT and DOUBLE PRECISION columns, application ids.
public enum Migrations {
    public static let all: [(version: Int, statements: [String])] = [
        (
            1,
            [
                """
                CREATE TABLE accounts (
                    id TEXT PRIMARY KEY,
                    email TEXT NOT NULL UNIQUE,
                    role TEXT NOT NULL,
                    concurrent_limit BIGINT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE api_keys (
                    id TEXT PRIMARY KEY,
                    account_id TEXT NOT NULL REFERENCES accounts(id),
                    name TEXT NOT NULL,
                    key_hash TEXT NOT NULL UNIQUE,
                    prefix TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    expires_at BIGINT,
                    revoked_at BIGINT,
                    last_used_at BIGINT
                )
                """,
                """
                CREATE TABLE sandboxes (
                    id TEXT PRIMARY KEY,
                    account_id TEXT NOT NULL REFERENCES accounts(id),
                    template TEXT NOT NULL,
                    state TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    ended_at BIGINT,
                    end_reason TEXT,
                    timeout_seconds BIGINT NOT NULL,
                    expires_at BIGINT,
                    last_activity_at BIGINT NOT NULL,
                    metadata TEXT NOT NULL,
                    env TEXT NOT NULL,
                    vault_inject BIGINT NOT NULL,
                    cpu_count BIGINT NOT NULL,
                    memory_mb BIGINT NOT NULL,
                    machine_dir TEXT,
                    machine_pid BIGINT,
                    node_id TEXT
                )
                """,
                "CREATE INDEX sandboxes_account_state ON sandboxes(account_id, state)",
                "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            ]
        ),
        (
            2,
            [
                """
                CREATE TABLE templates (
                    name TEXT PRIMARY KEY,
                    account_id TEXT NOT NULL REFERENCES accounts(id),
                    status TEXT NOT NULL,
                    description TEXT,
                    cpu_count BIGINT NOT NULL,
                    memory_mb BIGINT NOT NULL,
                    disk_mb BIGINT NOT NULL,
                    latest_build TEXT NOT NULL,
                    published BIGINT NOT NULL,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE template_builds (
                    id TEXT PRIMARY KEY,
                    template TEXT NOT NULL,
                    account_id TEXT NOT NULL REFERENCES accounts(id),
                    status TEXT NOT NULL,
                    error TEXT,
                    created_at BIGINT NOT NULL,
                    finished_at BIGINT
                )
                """,
                "CREATE INDEX template_builds_template ON template_builds(template)",
            ]
        ),
    ]

    public static func apply(to database: any SQLDatabase) async throws {
        try await database.query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        let applied = Set(try await database.query("SELECT version FROM schema_migrations").compactMap { $0.optionalInt("version") })
        for migration in all where !applied.contains(Int64(migration.version)) {
            let statements = migration.statements
            let version = migration.version
            try await database.transaction { tx in
                for statement in statements { try await tx.query(statement, []) }
                try await tx.query(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    [.int(Int64(version)), .int(Int64(nowMillis()))])
            }
        }
    }
}

public func nowMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

#if canImport(Glibc)
import Glibc
#endif
