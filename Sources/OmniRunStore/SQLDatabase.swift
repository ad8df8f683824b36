import OmniRunError

/// A value bound into or read out of a query. The schema uses only these types so
/// that one query text runs on SQLite and PostgreSQL alike.
public enum SQLValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case int(Int64)
    case double(Double)
    case text(String)

    public var description: String {
        switch self {
        case .null: "NULL"
        case .int(let v): "\(v)"
        case .double(let v): "\(v)"
        case .text(let v): "'\(v)'"
        }
    }
}

extension SQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    public init(_ value: Int64?) { self = value.map { .int($0) } ?? .null }
    public init(_ value: Int) { self = .int(Int64(value)) }
    public init(_ value: Bool) { self = .int(value ? 1 : 0) }
}

/// One result row, by column name.
public struct SQLRow: Sendable {
    public let values: [String: SQLValue]

    public init(values: [String: SQLValue]) {
        self.values = values
    }

    public func string(_ column: String) throws -> String {
        guard case .text(let value) = values[column] else {
            throw OmniRunError(.internalError, "column \(column) is not text: \(values[column]?.description ?? "missing")")
        }
        return value
    }

    /// A text column holding one of a type's raw values (a stored value the type does not
    /// know is an error, not a default).
    public func value<Value: RawRepresentable>(_ column: String, as type: Value.Type) throws -> Value
    where Value.RawValue == String {
        let text = try string(column)
        guard let value = Value(rawValue: text) else {
            throw OmniRunError(.internalError, "column \(column) holds '\(text)', not a \(Value.self)")
        }
        return value
    }

    public func optionalString(_ column: String) -> String? {
        if case .text(let value) = values[column] { return value }
        return nil
    }

    public func int(_ column: String) throws -> Int64 {
        switch values[column] {
        case .int(let value): return value
        case .double(let value): return Int64(value)
        case .text(let text) where Int64(text) != nil: return Int64(text)!
        default: throw OmniRunError(.internalError, "column \(column) is not an integer")
        }
    }

    public func optionalInt(_ column: String) -> Int64? {
        switch values[column] {
        case .int(let value): return value
        case .double(let value): return Int64(value)
        default: return nil
        }
    }

    public func double(_ column: String) -> Double {
        switch values[column] {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return 0
        }
    }

    public func bool(_ column: String) -> Bool { optionalInt(column).map { $0 != 0 } ?? false }
}

public enum SQLDialect: String, Sendable {
    case sqlite, postgres
}

/// The one query layer over both stores. Queries use `?` placeholders; the
/// PostgreSQL implementation numbers them.
public protocol SQLDatabase: Sendable {
    var dialect: SQLDialect { get }
    @discardableResult
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]
    /// Runs `body` in one transaction: all of it or none of it.
    func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T
    func close() async
}

extension SQLDatabase {
    @discardableResult
    public func query(_ sql: String) async throws -> [SQLRow] {
        try await query(sql, [])
    }
}
