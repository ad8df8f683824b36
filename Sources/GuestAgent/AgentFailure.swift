import AgentProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// An error the agent answers with: an HTTP status and an `AgentErrorBody`.
struct AgentFailure: Error, Sendable {
    var status: Int
    var code: String
    var message: String

    static func badRequest(_ message: String) -> AgentFailure {
        .init(status: 400, code: AgentErrorCode.invalidArgument, message: message)
    }
    static func notFound(_ message: String) -> AgentFailure {
        .init(status: 404, code: AgentErrorCode.notFound, message: message)
    }
    static func conflict(_ message: String) -> AgentFailure {
        .init(status: 409, code: AgentErrorCode.conflict, message: message)
    }

    /// Maps an errno from a file or process operation on `path` to a failure.
    static func errno(_ err: Int32, _ operation: String, path: String) -> AgentFailure {
        let text = String(cString: strerror(err))
        let message = "\(operation) \(path): \(text)"
        switch err {
        case ENOENT, ENOTDIR: return .init(status: 404, code: AgentErrorCode.notFound, message: message)
        case EACCES, EPERM: return .init(status: 403, code: AgentErrorCode.permissionDenied, message: message)
        case ENOSPC, EDQUOT: return .init(status: 507, code: AgentErrorCode.noSpace, message: message)
        case EROFS: return .init(status: 409, code: AgentErrorCode.readOnly, message: message)
        case EEXIST, ENOTEMPTY, EISDIR, EBUSY, EXDEV:
            return .init(status: 409, code: AgentErrorCode.conflict, message: message)
        case EINVAL, ENAMETOOLONG, ELOOP: return .init(status: 400, code: AgentErrorCode.invalidArgument, message: message)
        default: return .init(status: 500, code: AgentErrorCode.failed, message: message)
        }
    }
}

enum Clock {
    static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    static func monotonicMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    static func monotonicMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

enum AgentCoding {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return [UInt8](try encoder.encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw AgentFailure.badRequest("malformed \(type) body: \(error)")
        }
    }

    static func base64(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
    }

    static func unbase64(_ string: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: string) else { throw AgentFailure.badRequest("invalid base64 data") }
        return [UInt8](data)
    }
}
