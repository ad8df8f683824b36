import Foundation
import Hummingbird
import NIOCore
import OmniRunError
import TemplateBuilder

/// The parts of `POST /templates` (multipart/form-data): `dockerfile` (text), `settings`
/// (JSON, `TemplateSettings`) and an optional `context` (a tar of the build context),
/// streamed to a file.
struct TemplateUpload {
    var dockerfile: String
    var settings: TemplateSettings
    var contextPath: String?
    /// The context's size on disk (0 without one).
    var contextBytes = 0

    static let maxDockerfile = 1 << 20
    static let maxSettings = 64 << 10

    /// `quotaLeft`: when the account's build quota allows less than `maxContext`, what it allows.
    static func read(
        _ request: Request, contextDirectory: String, maxContext: Int, quotaLeft: Int? = nil
    ) async throws -> TemplateUpload {
        let contentType = request.headers[.contentType] ?? ""
        var parser = MultipartParser(boundary: try MultipartParser.boundary(fromContentType: contentType))
        var field: String?
        var value: [UInt8] = []
        var dockerfile: String?
        var settingsJSON: [UInt8]?
        var contextPath: String?
        var context: FileHandle?
        var contextBytes = 0
        func cleanUp() {
            try? context?.close()
            if let contextPath { try? FileManager.default.removeItem(atPath: contextPath) }
        }
        do {
            for try await chunk in request.body {
                for event in try parser.feed(chunk.readableBytesView) {
                    switch event {
                    case .partStart(let name, _):
                        field = name
                        value = []
                        if name == "context" {
                            guard contextPath == nil else { throw OmniRunError(.invalidArgument, "only one context part") }
                            try FileManager.default.createDirectory(atPath: contextDirectory, withIntermediateDirectories: true)
                            let path = contextDirectory + "/context-\(UUID().uuidString).tar"
                            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
                            contextPath = path
                            context = FileHandle(forWritingAtPath: path)
                        }
                    case .data(let bytes):
                        if field == "context", let context {
                            contextBytes += bytes.count
                            if let quotaLeft, contextBytes > quotaLeft {
                                throw OmniRunError(
                                    .limitReached,
                                    "the build context is larger than the \(quotaLeft >> 20) MiB this account's build quota has left; wait for a build to finish")
                            }
                            guard contextBytes <= maxContext else {
                                throw OmniRunError(.payloadTooLarge, "the build context is larger than \(maxContext >> 20) MiB")
                            }
                            try context.write(contentsOf: bytes)
                        } else {
                            value += bytes
                            let limit = field == "dockerfile" ? maxDockerfile : maxSettings
                            guard value.count <= limit else {
                                throw OmniRunError(.payloadTooLarge, "the \(field ?? "form") part is larger than \(limit >> 10) KiB")
                            }
                        }
                    case .partEnd:
                        switch field {
                        case "dockerfile": dockerfile = String(decoding: value, as: UTF8.self)
                        case "settings": settingsJSON = value
                        case "context":
                            try context?.close()
                            context = nil
                        default: break  // unknown parts are ignored
                        }
                        field = nil
                    }
                }
            }
        } catch {
            cleanUp()
            throw error
        }
        guard let dockerfile, !dockerfile.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            cleanUp()
            throw OmniRunError(.invalidArgument, "the multipart body needs a `dockerfile` part")
        }
        guard let settingsJSON else {
            cleanUp()
            throw OmniRunError(.invalidArgument, "the multipart body needs a `settings` part (JSON with at least a name)")
        }
        do {
            let settings = try JSONDecoder().decode(TemplateSettings.self, from: Data(settingsJSON))
            if contextPath != nil, contextBytes == 0 {
                try? FileManager.default.removeItem(atPath: contextPath!)
                return TemplateUpload(dockerfile: dockerfile, settings: settings, contextPath: nil)
            }
            return TemplateUpload(dockerfile: dockerfile, settings: settings, contextPath: contextPath, contextBytes: contextBytes)
        } catch let error as DecodingError {
            cleanUp()
            throw OmniRunError(.invalidArgument, "settings: \(APIError.describe(error))")
        } catch {
            cleanUp()
            throw OmniRunError(.invalidArgument, "settings must be a JSON object: \(error)")
        }
    }
}
