import AgentProtocol
import Foundation
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunError
import SandboxRuntime

/// envd's plain HTTP routes: `GET /health`, and `/files` for downloads and uploads (multipart
/// with one part per file, its filename the destination; or the raw bytes of one file).
/// Files stream both ways with bounded memory.
struct E2BEnvdHTTP {
    let access: E2BAccess

    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.get("/health", use: health)
        router.get("/files", use: download)
        router.post("/files", use: upload)
        return router
    }

    /// A running sandbox whose agent answers: 204 (the middleware answered 502 for one that is gone).
    @Sendable func health(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await access.sandbox(request, context: context)
        _ = try await sandbox.health(timeout: .seconds(5))
        return Response(status: .noContent)
    }

    static func user(_ request: Request) throws -> String? {
        try CommandController.user(request.query["username"])
    }

    @Sendable func download(_ request: Request, context: AppRequestContext) async throws -> Response {
        let path = try FileController.path(request.query["path"])
        let user = try Self.user(request)
        let sandbox = try await access.sandbox(request, context: context)
        let entry = try await sandbox.fileInfo(path: path, user: user)
        guard !entry.isDirectory else { throw OmniRunError(.invalidArgument, "\(path) is a directory") }
        return try await FileController.streamFile(
            sandbox: sandbox, path: path, user: user, headers: [.contentType: "application/octet-stream"])
    }

    /// What envd answers for each file written.
    struct WrittenView: Encodable {
        var name: String
        var type: String
        var path: String
    }

    static let maxFiles = 1000

    @Sendable func upload(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try Self.user(request)
        if request.headers.contains(where: { $0.name.canonicalName.hasPrefix("x-metadata-") }) {
            throw OmniRunError(.notImplemented, "file metadata (X-Metadata-*) is not supported")
        }
        if let encoding = request.headers[.contentEncoding], encoding.lowercased() != "identity" {
            throw OmniRunError(.unsupported, "compressed uploads (Content-Encoding: \(encoding.prefix(32))) are not supported; send gzip=False")
        }
        let contentType = request.headers[.contentType] ?? ""
        let sandbox = try await access.sandbox(request, context: context)
        if !contentType.lowercased().hasPrefix("multipart/form-data") {
            let path = try FileController.path(request.query["path"])
            let entry = try await sandbox.writeFile(path: path, user: user, chunks: request.body)
            return JSON.response([WrittenView(name: entry.name, type: "file", path: entry.path)])
        }
        let single = request.query["path"]
        var parser = MultipartParser(boundary: try MultipartParser.boundary(fromContentType: contentType))
        var writer: (bridge: StreamBridge<ByteBuffer>, task: Task<FileEntry, any Error>)?
        var written: [WrittenView] = []
        var files = 0
        do {
            for try await chunk in request.body {
                for event in try parser.feed(chunk.readableBytesView) {
                    switch event {
                    case .partStart(let name, let filename):
                        guard name == "file" else { throw OmniRunError(.invalidArgument, "every form part must be named 'file'") }
                        files += 1
                        guard files <= Self.maxFiles else {
                            throw OmniRunError(.invalidArgument, "at most \(Self.maxFiles) files per upload")
                        }
                        // One file may take the query's path; several carry theirs as filenames.
                        let target = try FileController.path(files == 1 && single != nil ? single : filename)
                        let bridge = StreamBridge<ByteBuffer>(capacity: 8)
                        let task = Task {
                            try await sandbox.writeFile(path: target, user: user, chunks: BridgeSequence(bridge: bridge))
                        }
                        writer = (bridge, task)
                    case .data(let bytes):
                        try await writer?.bridge.send(ByteBuffer(bytes: bytes))
                    case .partEnd:
                        guard let current = writer else { continue }
                        await current.bridge.finish()
                        let entry = try await current.task.value
                        writer = nil
                        written.append(WrittenView(name: entry.name, type: "file", path: entry.path))
                    }
                }
            }
            if writer != nil { throw OmniRunError(.invalidArgument, "the upload ended inside a file") }
        } catch {
            if let writer {
                await writer.bridge.finish(throwing: error)
                writer.task.cancel()
                _ = try? await writer.task.value
            }
            throw error
        }
        guard !written.isEmpty else { throw OmniRunError(.invalidArgument, "the upload has no file part") }
        return JSON.response(written)
    }
}
