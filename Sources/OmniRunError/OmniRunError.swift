/// The one error type of OmniRun. Every layer throws it; the API edge maps
/// `code` to an HTTP status in one place.
public struct OmniRunError: Error, Sendable, CustomStringConvertible {
    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(code): \(message) (cause: \(cause))" }
        return "\(code): \(message)"
    }

    /// A stable, machine-readable error code (`"not_found"`, `"timeout"`...).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case invalidArgument = "invalid_argument"
            case notFound = "not_found"
            case alreadyExists = "already_exists"
            case conflict = "conflict"
            case unauthorized = "unauthorized"
            case forbidden = "forbidden"
            case limitReached = "limit_reached"
            case sandboxLimit = "sandbox_limit"
            case payloadTooLarge = "payload_too_large"
            case timeout = "timeout"
            case unavailable = "unavailable"
            case unsupported = "unsupported"
            case notImplemented = "not_implemented"
            case noSpace = "no_space"
            case machineFailed = "machine_failed"
            case agentError = "agent_error"
            case protocolViolation = "protocol_violation"
            case spendCapReached = "spend_cap_reached"
            case upstreamFailed = "upstream_error"
            case upstreamTimeout = "upstream_timeout"
            case internalError = "internal"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        public var description: String { value.rawValue }
        public var rawValue: String { value.rawValue }

        public init?(rawValue: String) {
            guard let value = Value(rawValue: rawValue) else { return nil }
            self.value = value
        }

        public static let invalidArgument = Code(.invalidArgument)
        public static let notFound = Code(.notFound)
        public static let alreadyExists = Code(.alreadyExists)
        public static let conflict = Code(.conflict)
        public static let unauthorized = Code(.unauthorized)
        public static let forbidden = Code(.forbidden)
        public static let limitReached = Code(.limitReached)
        /// The per-account concurrent sandbox limit.
        public static let sandboxLimit = Code(.sandboxLimit)
        public static let payloadTooLarge = Code(.payloadTooLarge)
        public static let timeout = Code(.timeout)
        public static let unavailable = Code(.unavailable)
        public static let unsupported = Code(.unsupported)
        public static let notImplemented = Code(.notImplemented)
        public static let noSpace = Code(.noSpace)
        public static let machineFailed = Code(.machineFailed)
        public static let agentError = Code(.agentError)
        public static let protocolViolation = Code(.protocolViolation)
        /// An account's LLM spend reached its cap (402).
        public static let spendCapReached = Code(.spendCapReached)
        /// An outside service the server calls (an LLM upstream, a mail server) failed (502).
        public static let upstreamFailed = Code(.upstreamFailed)
        /// An outside service did not answer in time (504).
        public static let upstreamTimeout = Code(.upstreamTimeout)
        public static let internalError = Code(.internalError)
    }
}

extension OmniRunError {
    public static func notFound(_ message: String) -> OmniRunError { .init(.notFound, message) }
    public static func invalidArgument(_ message: String) -> OmniRunError { .init(.invalidArgument, message) }
    public static func timeout(_ message: String) -> OmniRunError { .init(.timeout, message) }
    public static func unsupported(_ message: String) -> OmniRunError { .init(.unsupported, message) }
}
