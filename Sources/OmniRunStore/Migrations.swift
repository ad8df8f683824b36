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
                // Accounts: LLM spend (exact, in millionths of a cent) and an optional own cap.
                "ALTER TABLE accounts ADD COLUMN llm_spend_cap_cents BIGINT",
                "ALTER TABLE accounts ADD COLUMN llm_spend_microcents BIGINT NOT NULL DEFAULT 0",
                // Sign-in by email: one row per code sent (hashes only).
                """
                CREATE TABLE login_challenges (
                    id TEXT PRIMARY KEY,
                    email TEXT NOT NULL,
                    ip TEXT NOT NULL,
                    code_hash TEXT NOT NULL,
                    link_hash TEXT NOT NULL UNIQUE,
                    created_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    attempts BIGINT NOT NULL,
                    consumed_at BIGINT
                )
                """,
                "CREATE INDEX login_challenges_email ON login_challenges(email, created_at)",
                "CREATE INDEX login_challenges_ip ON login_challenges(ip, created_at)",
                // The vault: a data key per account (wrapped by the server's master key) and
                // the credentials sealed under it.
                """
                CREATE TABLE vaults (
                    account_id TEXT PRIMARY KEY REFERENCES accounts(id),
                    wrapped_key TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE vault_credentials (
                    account_id TEXT NOT NULL REFERENCES accounts(id),
                    name TEXT NOT NULL,
                    sealed TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    PRIMARY KEY (account_id, name)
                )
                """,
                // One row per proxied LLM request that was charged.
                """
                CREATE TABLE llm_usage (
                    id TEXT PRIMARY KEY,
                    account_id TEXT NOT NULL REFERENCES accounts(id),
                    sandbox_id TEXT,
                    model TEXT NOT NULL,
                    upstream TEXT NOT NULL,
                    prompt_tokens BIGINT NOT NULL,
                    completion_tokens BIGINT NOT NULL,
                    cost_microcents BIGINT NOT NULL,
                    cost_source TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX llm_usage_account ON llm_usage(account_id, created_at)",
            ]
        ),
        (
            3,
            [
                // Custom templates and their builds.
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
        (
            4,
            [
                // End-to-end encrypted transport: each e2ee sandbox's channel key, sealed under
                // a key derived from the server's master key (never stored in the clear).
                """
                CREATE TABLE sandbox_e2ee_keys (
                    sandbox_id TEXT PRIMARY KEY,
                    sealed_key TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
            ]
        ),
        (
            5,
            [
                // Pause and resume: `state` may be 'paused'; whether a timeout or idleness
                // pauses instead of killing; when it was paused and what its saved state holds.
                "ALTER TABLE sandboxes ADD COLUMN auto_pause BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE sandboxes ADD COLUMN paused_at BIGINT",
                "ALTER TABLE sandboxes ADD COLUMN paused_bytes BIGINT",
                // Metrics of each sandbox, sampled from inside the guest and from its VMM,
                // kept for the sandbox's life.
                """
                CREATE TABLE sandbox_metrics (
                    sandbox_id TEXT NOT NULL,
                    at BIGINT NOT NULL,
                    cpu_used_pct DOUBLE PRECISION NOT NULL,
                    cpu_count BIGINT NOT NULL,
                    mem_used BIGINT NOT NULL,
                    mem_total BIGINT NOT NULL,
                    disk_used BIGINT NOT NULL,
                    disk_total BIGINT NOT NULL,
                    host_cpu_pct DOUBLE PRECISION NOT NULL,
                    host_rss BIGINT NOT NULL,
                    PRIMARY KEY (sandbox_id, at)
                )
                """,
                // Webhooks (account level) and every delivery with its attempts.
                """
                CREATE TABLE webhooks (
                    id TEXT PRIMARY KEY,
                    account_id TEXT NOT NULL REFERENCES accounts(id),
                    url TEXT NOT NULL,
                    events TEXT NOT NULL,
                    secret TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX webhooks_account ON webhooks(account_id)",
                """
                CREATE TABLE webhook_deliveries (
                    id TEXT PRIMARY KEY,
                    webhook_id TEXT NOT NULL,
                    event TEXT NOT NULL,
                    sandbox_id TEXT,
                    payload TEXT NOT NULL,
                    status TEXT NOT NULL,
                    attempts BIGINT NOT NULL,
                    last_status BIGINT,
                    last_error TEXT,
                    created_at BIGINT NOT NULL,
                    next_attempt_at BIGINT,
                    delivered_at BIGINT
                )
                """,
                "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at)",
                "CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, created_at)",
            ]
        ),
        (
            6,
            [
                // Exposures: managed preview URLs of a sandbox's ports.
                """
                CREATE TABLE exposures (
                    id TEXT PRIMARY KEY,
                    sandbox_id TEXT NOT NULL,
                    account_id TEXT NOT NULL REFERENCES accounts(id),
                    port BIGINT NOT NULL,
                    hostname TEXT NOT NULL UNIQUE,
                    visibility TEXT NOT NULL,
                    status TEXT NOT NULL,
                    open_path TEXT NOT NULL,
                    preserve_host BIGINT NOT NULL,
                    created_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    revoked_at BIGINT,
                    sandbox_stopped_at BIGINT,
                    last_accessed_at BIGINT,
                    created_by TEXT
                )
                """,
                "CREATE INDEX exposures_sandbox ON exposures(sandbox_id, created_at)",
                // A sandbox's network settings: secure mode's traffic token (hash only), the
                // Host its proxied traffic carries, internet access and its egress policy.
                """
                CREATE TABLE sandbox_network (
                    sandbox_id TEXT PRIMARY KEY,
                    traffic_token_hash TEXT,
                    mask_request_host TEXT,
                    internet BIGINT NOT NULL,
                    policy TEXT
                )
                """,
            ]
        ),
        (
            7,
            [
                // E2EE: the request nonces each e2ee sandbox has admitted (replays are refused
                // across restarts); `retry_route` lets one retry of that route in after a 5xx.
                """
                CREATE TABLE sandbox_e2ee_nonces (
                    sandbox_id TEXT NOT NULL,
                    nonce TEXT NOT NULL,
                    seen_at BIGINT NOT NULL,
                    retry_route TEXT,
                    PRIMARY KEY (sandbox_id, nonce)
                )
                """,
                "CREATE INDEX sandbox_e2ee_nonces_seen ON sandbox_e2ee_nonces(sandbox_id, seen_at)",
            ]
        ),
        (
            8,
            [
                // Nodes of a cluster sharing this database, each with a lease it renews.
                """
                CREATE TABLE nodes (
                    id TEXT PRIMARY KEY,
                    region TEXT NOT NULL,
                    advertise_url TEXT,
                    started_at BIGINT NOT NULL,
                    lease_expires_at BIGINT NOT NULL,
                    draining BIGINT NOT NULL,
                    vcpus BIGINT NOT NULL,
                    memory_mb BIGINT NOT NULL,
                    disk_mb BIGINT NOT NULL,
                    running BIGINT NOT NULL,
                    templates TEXT NOT NULL,
                    load DOUBLE PRECISION NOT NULL
                )
                """,
                // Places creates hold against their account's concurrent limit, on any node.
                """
                CREATE TABLE sandbox_admissions (
                    id TEXT PRIMARY KEY,
                    account_id TEXT NOT NULL,
                    node_id TEXT NOT NULL,
                    places BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX sandbox_admissions_account ON sandbox_admissions(account_id, expires_at)",
                "ALTER TABLE sandboxes ADD COLUMN region TEXT",
                "CREATE INDEX sandboxes_node_state ON sandboxes(node_id, state)",
            ]
        ),
        (
            9,
            [
                // The port of each node's preview gateway (the others forward preview connections there).
                "ALTER TABLE nodes ADD COLUMN preview_port BIGINT",
            ]
        ),
    ]

    /// Applies what is missing, in one transaction. Servers (and test suites) starting at
    /// once on one PostgreSQL database take turns through an advisory lock; on SQLite the
    /// transaction's write lock does the same.
    public static func apply(to database: any SQLDatabase) async throws {
        try await database.transaction { tx in
            if tx.dialect == .postgres {
                try await tx.query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(7230118)) AS l", [])
            }
            try await tx.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)", [])
            let applied = Set(
                try await tx.query("SELECT version FROM schema_migrations", []).compactMap { $0.optionalInt("version") })
            for migration in all where !applied.contains(Int64(migration.version)) {
                for statement in migration.statements { try await tx.query(statement, []) }
                try await tx.query(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    [.int(Int64(migration.version)), .int(Int64(nowMillis()))])
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
