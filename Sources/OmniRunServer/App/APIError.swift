import Foundation
import HTTPTypes
import Hummingbird
import OmniRunError

/// The one place where errors become HTTP: `{"error": code, "message": text}`.
enum APIError {
    static func status(for code: OmniRunError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidArgument: .badRequest
        case .unauthorized: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .alreadyExists, .conflict: .conflict
        case .limitReached, .sandboxLimit: .tooManyRequests
        case .payloadTooLarge: .contentTooLarge
        case .timeout: .gatewayTimeout
        case .unavailable, .machineFailed: .serviceUnavailable
        case .agentError, .protocolViolation, .upstreamFailed: .badGateway
        case .upstreamTimeout: .gatewayTimeout
        case .spendCapReached: .init(code: 402, reasonPhrase: "Payment Required")
        case .notImplemented: .notImplemented
        case .unsupported: .badRequest
        case .noSpace: .init(code: 507, reasonPhrase: "Insufficient Storage")
        default: .internalServerError
        }
    }

    /// The `error` field: the code, except where the docs promise a text.
    static func errorField(for code: OmniRunError.Code) -> String {
        code == .sandboxLimit ? "concurrent sandbox limit reached" : code.rawValue
    }

    static func response(_ error: OmniRunError) -> Response {
        let body: [String: String] = ["error": errorField(for: error.code), "message": error.message]
        return JSON.response(body, status: status(for: error.code))
    }

    /// Converts anything thrown into an `OmniRunError` with the right code.
    static func normalize(_ error: any Error) -> OmniRunError {
        if let error = error as? OmniRunError { return error }
        if let error = error as? HTTPError {
            let code: OmniRunError.Code
            switch error.status.code {
            case 400: code = .invalidArgument
            case 401: code = .unauthorized
            case 403: code = .forbidden
            case 404: code = .notFound
            case 405: code = .invalidArgument
            case 409: code = .conflict
            case 413: code = .payloadTooLarge
            case 429: code = .limitReached
            case 501: code = .notImplemented
            default: code = error.status.code < 500 ? .invalidArgument : .internalError
            }
            let message = error.body ?? (error.status.code == 404 ? "not found" : error.status.reasonPhrase)
            return OmniRunError(code, message)
        }
        if error is DecodingError {
            return OmniRunError(.invalidArgument, "malformed request body: \(describe(error as! DecodingError))")
        }
        if error is CancellationError { return OmniRunError(.unavailable, "request cancelled") }
        return OmniRunError(.internalError, "\(error)")
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context),
            .dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

/// Turns every error into the JSON error body; logs the unexpected ones.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let normalized = APIError.normalize(error)
            if normalized.code == .internalError {
                context.logger.error(
                    "request failed", metadata: ["path": "\(request.uri.path)", "error": "\(normalized.message)"])
            }
            return APIError.response(normalized)
        }
    }
}
