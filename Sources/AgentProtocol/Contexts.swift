#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Code contexts: stateful interpreters (Jupyter kernels) in the guest.
///
/// `POST /v1/contexts`: the request body is one `ContextRequest` as a JSON line, the answer
/// (200) is newline-delimited `ContextEvent`s. The agent starts the template's contexts
/// service (`serviceExecutable`, as the sandbox's default user) on the first such request
/// and passes the bytes through to its Unix socket unchanged; the service keeps every
/// context, so they live as long as the guest's memory does (pause, resume and fork keep them).
public enum ContextsAPI {
    public static let path = "/v1/contexts"
    /// Installed by templates that have contexts (playground and those built on it).
    public static let serviceExecutable = "/usr/local/lib/omnirun/contexts-service"
    /// Directory the agent makes for the service (owned by the default user, mode 0700).
    public static let socketDirectory = "/run/omnirun-contexts"
    public static let socketPath = "/run/omnirun-contexts/contexts.sock"
    /// Tag of the service's process in the agent's table (hidden from process lists).
    public static let serviceTag = "omnirun-contexts-service"
    /// Languages the service runs.
    public static let languages = ["python"]
}

public struct ContextRequest: Codable, Sendable {
    /// `create`, `list`, `execute`, `restart`, `delete` or `health`.
    public var op: String
    public var id: String?
    public var language: String?
    public var cwd: String?
    public var code: String?
    /// An execute that runs longer is interrupted (KeyboardInterrupt); one that ignores the
    /// interrupt for 10 s more gets a fresh kernel.
    public var timeoutMillis: Int64?

    public init(
        op: String, id: String? = nil, language: String? = nil, cwd: String? = nil, code: String? = nil,
        timeoutMillis: Int64? = nil
    ) {
        self.op = op
        self.id = id
        self.language = language
        self.cwd = cwd
        self.code = code
        self.timeoutMillis = timeoutMillis
    }
}

public struct ContextInfo: Codable, Sendable, Equatable {
    public var id: String
    public var language: String
    public var cwd: String
    /// ISO 8601 (UTC).
    public var createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, language, cwd
        case createdAt = "created_at"
    }

    public init(id: String, language: String, cwd: String, createdAt: String) {
        self.id = id
        self.language = language
        self.cwd = cwd
        self.createdAt = createdAt
    }
}

/// One line of the service's answer. `type` says which fields are set:
/// `context` (context), `contexts` (contexts), `deleted`, `ok`; while executing `stdout` and
/// `stderr` (data: text), `result` (data: a MIME bundle keyed `text`, `png`, `html`, `svg`,
/// `json`, `markdown`, `latex`, `javascript`), `error` (name, value, traceback), then `done`
/// (executionCount); `failure` (status, code, message) when the request failed.
public struct ContextEvent: Codable, Sendable, Equatable {
    public var type: String
    public var data: JSONValue?
    public var context: ContextInfo?
    public var contexts: [ContextInfo]?
    public var name: String?
    public var value: String?
    public var traceback: String?
    public var executionCount: Int?
    /// On a `result`: whether it is the execution's value (Jupyter's `execute_result`) rather
    /// than something displayed along the way (`display_data`).
    public var isMainResult: Bool?
    public var status: Int?
    public var code: String?
    public var message: String?

    enum CodingKeys: String, CodingKey {
        case type, data, context, contexts, name, value, traceback, status, code, message
        case executionCount = "execution_count"
        case isMainResult = "is_main_result"
    }

    public init(type: String, data: JSONValue? = nil) {
        self.type = type
        self.data = data
    }
}

/// Any JSON value (a MIME bundle's `application/json` part is arbitrary JSON).
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }
}
