import OmniRunError

/// A user's template and the state of its latest build.
public struct TemplateRecord: Sendable, Equatable {
    public var name: String
    public var accountID: String
    /// building | ready | failed (the latest build's outcome; `ready` once any build succeeded
    /// and the latest did not fail is not tracked: a failed rebuild keeps the old version usable)
    public var status: String
    public var description: String?
    public var cpuCount: Int
    public var memoryMB: Int
    public var diskMB: Int
    public var latestBuild: String
    /// Whether a version of the template has ever been published (sandboxes can be created).
    public var published: Bool
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(
        name: String, accountID: String, status: String, description: String?, cpuCount: Int, memoryMB: Int, diskMB: Int,
        latestBuild: String, published: Bool, createdAt: Int64, updatedAt: Int64
    ) {
        self.name = name
        self.accountID = accountID
        self.status = status
        self.description = description
        self.cpuCount = cpuCount
        self.memoryMB = memoryMB
        self.diskMB = diskMB
        self.latestBuild = latestBuild
        self.published = published
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public struct TemplateBuildRecord: Sendable, Equatable {
    public var id: String
    public var template: String
    public var accountID: String
    /// building | ready | failed
    public var status: String
    public var error: String?
    public var createdAt: Int64
    public var finishedAt: Int64?

    public init(
        id: String, template: String, accountID: String, status: String, error: String?, createdAt: Int64, finishedAt: Int64?
    ) {
        self.id = id
        self.template = template
        self.accountID = accountID
        self.status = status
        self.error = error
        self.createdAt = createdAt
        self.finishedAt = finishedAt
    }
}

/// Users' templates and their builds.
public struct TemplateRepository: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    /// Claims a name for an account: a new template, or a new build of the account's own one.
    /// A name another account holds is a conflict.
    public func claim(_ record: TemplateRecord, build: TemplateBuildRecord) async throws -> TemplateRecord {
        try await database.transaction { tx in
            let rows = try await tx.query("SELECT * FROM templates WHERE name = ?", [.text(record.name)])
            var stored = record
            if let row = rows.first {
                let existing = try Self.template(row)
                guard existing.accountID == record.accountID else {
                    throw OmniRunError(.alreadyExists, "the template name '\(record.name)' is taken")
                }
                guard existing.status != "building" else {
                    throw OmniRunError(.conflict, "template \(record.name) is being built (build \(existing.latestBuild))")
                }
                stored.createdAt = existing.createdAt
                stored.published = existing.published
                try await tx.query(
                    """
                    UPDATE templates SET status = ?, description = ?, cpu_count = ?, memory_mb = ?, disk_mb = ?,
                        latest_build = ?, updated_at = ? WHERE name = ?
                    """,
                    [
                        .text(stored.status), SQLValue(stored.description), SQLValue(stored.cpuCount), SQLValue(stored.memoryMB),
                        SQLValue(stored.diskMB), .text(stored.latestBuild), .int(stored.updatedAt), .text(stored.name),
                    ])
            } else {
                try await tx.query(
                    """
                    INSERT INTO templates (name, account_id, status, description, cpu_count, memory_mb, disk_mb, latest_build,
                        published, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .text(stored.name), .text(stored.accountID), .text(stored.status), SQLValue(stored.description),
                        SQLValue(stored.cpuCount), SQLValue(stored.memoryMB), SQLValue(stored.diskMB), .text(stored.latestBuild),
                        SQLValue(stored.published), .int(stored.createdAt), .int(stored.updatedAt),
                    ])
            }
            try await tx.query(
                "INSERT INTO template_builds (id, template, account_id, status, error, created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    .text(build.id), .text(build.template), .text(build.accountID), .text(build.status), SQLValue(build.error),
                    .int(build.createdAt), SQLValue(build.finishedAt),
                ])
            return stored
        }
    }

    /// Records a build's end (and, when it succeeded, that the template is published).
    public func finish(build: String, template: String, status: String, error: String?, at: Int64) async throws {
        try await database.transaction { tx in
            try await tx.query(
                "UPDATE template_builds SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                [.text(status), SQLValue(error), .int(at), .text(build)])
            try await tx.query(
                "UPDATE templates SET status = ?, published = CASE WHEN ? = 'ready' THEN 1 ELSE published END, updated_at = ? WHERE name = ? AND latest_build = ?",
                [.text(status), .text(status), .int(at), .text(template), .text(build)])
        }
    }

    public func find(name: String) async throws -> TemplateRecord? {
        try await database.query("SELECT * FROM templates WHERE name = ?", [.text(name)]).first.map(Self.template)
    }

    public func all(accountID: String? = nil) async throws -> [TemplateRecord] {
        if let accountID {
            return try await database.query("SELECT * FROM templates WHERE account_id = ? ORDER BY name", [.text(accountID)])
                .map(Self.template)
        }
        return try await database.query("SELECT * FROM templates ORDER BY name").map(Self.template)
    }

    public func build(id: String) async throws -> TemplateBuildRecord? {
        try await database.query("SELECT * FROM template_builds WHERE id = ?", [.text(id)]).first.map(Self.build)
    }

    public func delete(name: String) async throws {
        try await database.transaction { tx in
            try await tx.query("DELETE FROM template_builds WHERE template = ?", [.text(name)])
            try await tx.query("DELETE FROM templates WHERE name = ?", [.text(name)])
        }
    }

    /// Builds that were running when the server stopped: they are failed now.
    public func failInterrupted(at: Int64) async throws {
        try await database.query(
            "UPDATE template_builds SET status = 'failed', error = 'interrupted by a server restart', finished_at = ? WHERE status = 'building'",
            [.int(at)])
        try await database.query("UPDATE templates SET status = 'failed', updated_at = ? WHERE status = 'building'", [.int(at)])
    }

    static func template(_ row: SQLRow) throws -> TemplateRecord {
        TemplateRecord(
            name: try row.string("name"), accountID: try row.string("account_id"), status: try row.string("status"),
            description: row.optionalString("description"), cpuCount: Int(row.optionalInt("cpu_count") ?? 1),
            memoryMB: Int(row.optionalInt("memory_mb") ?? 256), diskMB: Int(row.optionalInt("disk_mb") ?? 0),
            latestBuild: try row.string("latest_build"), published: row.bool("published"), createdAt: try row.int("created_at"),
            updatedAt: try row.int("updated_at"))
    }

    static func build(_ row: SQLRow) throws -> TemplateBuildRecord {
        TemplateBuildRecord(
            id: try row.string("id"), template: try row.string("template"), accountID: try row.string("account_id"),
            status: try row.string("status"), error: row.optionalString("error"), createdAt: try row.int("created_at"),
            finishedAt: row.optionalInt("finished_at"))
    }
}
