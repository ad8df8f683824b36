import Logging
import NIOCore
import OmniRunError
import PostgresNIO

/// PostgreSQL, for several nodes sharing one control plane. `?` placeholders are
/// numbered (`$1`, `$2`...) before sending.
public final class PostgresDatabase: SQLDatabase, @unchecked Sendable {
    public let dialect = SQLDialect.postgres
    private let client: PostgresClient
    private let logger: Logger
    private let runner: Task<Void, Never>

    private init(client: PostgresClient, logger: Logger, runner: Task<Void, Never>) {
        self.client = client
        self.logger = logger
        self.runner = runner
    }

    /// Connects using a `postgres://user:password@host:port/database` URL
    /// (or `postgres:///database?host=/run/postgresql` for a Unix socket).
    public static func connect(url: String, logger: Logger) async throws -> PostgresDatabase {
        let configuration = try parse(url)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let runner = Task { await client.run() }
        let database = PostgresDatabase(client: client, logger: logger, runner: runner)
        // Fail early with a clear message when the server cannot be reached.
        do {
            _ = try await database.query("SELECT 1 AS one", [])
        } catch {
            runner.cancel()
            throw OmniRunError(.unavailable, "cannot reach PostgreSQL at \(redacted(url)): \(error)")
        }
        return database
    }

    static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://") else { return url }
        return String(url[..<scheme.upperBound]) + "…" + String(url[at...])
    }

    static func parse(_ url: String) throws -> PostgresClient.Configuration {
        guard let schemeEnd = url.range(of: "://"), url.hasPrefix("postgres") else {
            throw OmniRunError(.invalidArgument, "not a postgres:// URL: \(redacted(url))")
        }
        var rest = String(url[schemeEnd.upperBound...])
        var query: [String: String] = [:]
        if let q = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { query[String(kv[0])] = String(kv[1]).removingPercentEncoding ?? String(kv[1]) }
            }
            rest = String(rest[..<q])
        }
        var userInfo = ""
        if let at = rest.lastIndex(of: "@") {
            userInfo = String(rest[..<at])
            rest = String(rest[rest.index(after: at)...])
        }
        let hostPort: String
        var database: String? = nil
        if let slash = rest.firstIndex(of: "/") {
            hostPort = String(rest[..<slash])
            database = String(rest[rest.index(after: slash)...])
        } else {
            hostPort = rest
        }
        let userParts = userInfo.split(separator: ":", maxSplits: 1)
        let user = userParts.first.map { String($0).removingPercentEncoding ?? String($0) } ?? query["user"] ?? "postgres"
        let password = userParts.count > 1 ? String(userParts[1]).removingPercentEncoding : query["password"]
        if let socketDir = query["host"], socketDir.hasPrefix("/") {
            let port = hostPort.split(separator: ":").last.flatMap { Int($0) } ?? 5432
            var configuration = PostgresClient.Configuration(
                unixSocketPath: "\(socketDir)/.s.PGSQL.\(port)", username: user, password: password, database: database)
            configuration.options.maximumConnections = 8
            return configuration
        }
        let hostParts = hostPort.split(separator: ":")
        let host = hostParts.first.map(String.init).flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        let port = hostParts.count > 1 ? Int(hostParts[1]) ?? 5432 : 5432
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: .disable)
        configuration.options.maximumConnections = 8
        return configuration
    }

    static func numbered(_ sql: String) -> String {
        var out = ""
        var n = 0
        var inString = false
        for ch in sql {
            if ch == "'" { inString.toggle() }
            if ch == "?" && !inString {
                n += 1
                out += "$\(n)"
            } else {
                out.append(ch)
            }
        }
        return out
    }

    static func makeQuery(_ sql: String, _ binds: [SQLValue]) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: binds.count)
        for bind in binds {
            switch bind {
            case .null: bindings.appendNull()
            case .int(let v): bindings.append(v)
            case .double(let v): bindings.append(v)
            case .text(let v): bindings.append(v)
            }
        }
        return PostgresQuery(unsafeSQL: numbered(sql), binds: bindings)
    }

    static func decode(_ rows: PostgresRowSequence) async throws -> [SQLRow] {
        var result: [SQLRow] = []
        for try await row in rows {
            var values: [String: SQLValue] = [:]
            for cell in row {
                guard cell.bytes != nil else {
                    values[cell.columnName] = .null
                    continue
                }
                switch cell.dataType {
                case .int2, .int4, .int8: values[cell.columnName] = .int(try cell.decode(Int64.self))
                case .float4, .float8, .numeric: values[cell.columnName] = .double(try cell.decode(Double.self))
                case .bool: values[cell.columnName] = .int(try cell.decode(Bool.self) ? 1 : 0)
                default: values[cell.columnName] = .text(try cell.decode(String.self))
                }
            }
            result.append(SQLRow(values: values))
        }
        return result
    }

    public func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        do {
            let rows = try await client.query(Self.makeQuery(sql, binds), logger: logger)
            return try await Self.decode(rows)
        } catch let error as OmniRunError {
            throw error
        } catch {
            throw StoreError.wrap(String(reflecting: error), sql: sql)
        }
    }

    public func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await client.withConnection { connection in
            _ = try await connection.query("BEGIN", logger: self.logger)
            do {
                let result = try await body(ConnectionView(connection: connection, logger: self.logger))
                _ = try await connection.query("COMMIT", logger: self.logger)
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: self.logger)
                throw error
            }
        }
    }

    public func close() async {
        runner.cancel()
    }

    private struct ConnectionView: SQLDatabase, @unchecked Sendable {
        let connection: PostgresConnection
        let logger: Logger
        var dialect: SQLDialect { .postgres }
        func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
            do {
                let rows = try await connection.query(PostgresDatabase.makeQuery(sql, binds), logger: logger)
                return try await PostgresDatabase.decode(rows)
            } catch let error as OmniRunError {
                throw error
            } catch {
                throw StoreError.wrap(String(reflecting: error), sql: sql)
            }
        }
        func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
            try await body(self)
        }
        func close() async {}
    }
}

extension StoreError {
    static func wrap(_ text: String, sql: String) -> OmniRunError {
        if text.contains("23505") || text.contains("duplicate key") || text.contains("unique") {
            return OmniRunError(.alreadyExists, "already exists")
        }
        return OmniRunError(.internalError, "store query failed: \(text)")
    }
}

extension String {
    fileprivate var removingPercentEncoding: String? {
        var bytes: [UInt8] = []
        var iterator = Array(utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let h = iterator.next(), let l = iterator.next(),
                let value = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
