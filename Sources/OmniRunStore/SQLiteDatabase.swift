import Logging
import NIOCore
import NIOPosix
import OmniRunError
import SQLiteNIO

/// The embedded store: one SQLite file, one connection, statements serialised
/// (a transaction holds the connection until it ends).
public final class SQLiteDatabase: SQLDatabase, @unchecked Sendable {
    public let dialect = SQLDialect.sqlite
    private let connection: SQLiteConnection
    private let lock = AsyncMutex()

    private init(connection: SQLiteConnection) {
        self.connection = connection
    }

    public static func open(path: String, logger: Logger) async throws -> SQLiteDatabase {
        let connection = try await SQLiteConnection.open(storage: path == ":memory:" ? .memory : .file(path: path), logger: logger)
        let database = SQLiteDatabase(connection: connection)
        _ = try await connection.query("PRAGMA journal_mode=WAL")
        _ = try await connection.query("PRAGMA synchronous=NORMAL")
        _ = try await connection.query("PRAGMA foreign_keys=ON")
        _ = try await connection.query("PRAGMA busy_timeout=5000")
        return database
    }

    public func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await lock.withLock { try await self.run(sql, binds) }
    }

    private func run(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        let data: [SQLiteData] = binds.map {
            switch $0 {
            case .null: .null
            case .int(let v): .integer(Int(v))
            case .double(let v): .float(v)
            case .text(let v): .text(v)
            }
        }
        do {
            let rows = try await connection.query(sql, data)
            return rows.map { row in
                var values: [String: SQLValue] = [:]
                for column in row.columns {
                    switch column.data {
                    case .integer(let v): values[column.name] = .int(Int64(v))
                    case .float(let v): values[column.name] = .double(v)
                    case .text(let v): values[column.name] = .text(v)
                    case .blob(let v): values[column.name] = .text(String(buffer: v))
                    case .null: values[column.name] = .null
                    }
                }
                return SQLRow(values: values)
            }
        } catch {
            throw StoreError.wrap(error, sql: sql)
        }
    }

    public func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await lock.withLock {
            _ = try await self.run("BEGIN IMMEDIATE", [])
            do {
                let result = try await body(Transaction(database: self))
                _ = try await self.run("COMMIT", [])
                return result
            } catch {
                _ = try? await self.run("ROLLBACK", [])
                throw error
            }
        }
    }

    public func close() async {
        try? await connection.close()
    }

    /// The view of the database inside a transaction (the lock is already held).
    private struct Transaction: SQLDatabase {
        let database: SQLiteDatabase
        var dialect: SQLDialect { .sqlite }
        func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
            try await database.run(sql, binds)
        }
        func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
            try await body(self)
        }
        func close() async {}
    }
}

enum StoreError {
    static func wrap(_ error: any Error, sql: String) -> OmniRunError {
        let text = "\(error)"
        if text.contains("UNIQUE") || text.contains("unique") || text.contains("duplicate key") {
            return OmniRunError(.alreadyExists, "already exists")
        }
        return OmniRunError(.internalError, "store query failed: \(text)")
    }
}

/// A FIFO async mutex.
actor AsyncMutex {
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func withLock<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        if !locked {
            locked = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        if waiters.isEmpty { locked = false } else { waiters.removeFirst().resume() }
    }
}
