import Logging

/// Opens the configured database and brings its schema up to date.
public enum Store {
    /// `url` is `sqlite:///path/to/file.db`, a plain file path, or `postgres://…`.
    public static func open(url: String, logger: Logger) async throws -> any SQLDatabase {
        let database: any SQLDatabase
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            database = try await PostgresDatabase.connect(url: url, logger: logger)
        } else {
            let path = url.hasPrefix("sqlite://") ? String(url.dropFirst("sqlite://".count)) : url
            database = try await SQLiteDatabase.open(path: path, logger: logger)
        }
        try await Migrations.apply(to: database)
        return database
    }
}
