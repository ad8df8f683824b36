import AgentProtocol
import Foundation
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// File routes (wire protocol §6) and signed URLs (§4.8).
struct FileController {
    let service: SandboxService
    let signer: URLSigner
    let configuration: ServerConfiguration

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.get("/sandboxes/:id/files", use: readText)
        router.post("/sandboxes/:id/files", use: writeText)
        router.delete("/sandboxes/:id/files", use: remove)
        router.get("/sandboxes/:id/files/download", use: download)
        router.post("/sandboxes/:id/files/upload", use: upload)
        router.put("/sandboxes/:id/files/upload", use: upload)
        router.post("/sandboxes/:id/files/batch", use: batch)
        router.get("/sandboxes/:id/files/list", use: list)
        router.get("/sandboxes/:id/files/exists", use: exists)
        router.get("/sandboxes/:id/files/info", use: info)
        router.post("/sandboxes/:id/files/rename", use: rename)
        router.post("/sandboxes/:id/files/mkdir", use: mkdir)
        router.get("/sandboxes/:id/files/watch", use: watch)
        router.post("/sandboxes/:id/files/download-url", use: downloadURL)
        router.post("/sandboxes/:id/files/upload-url", use: uploadURL)
        return router
    }

    /// `{name, path, is_dir, size}` as the SDK reads entries; `type` is `file`, `dir`,
    /// `symlink` or `other` (scripts written for the hosted product filter on `"dir"`).
    struct EntryView: Encodable {
        var name: String
        var path: String
        var is_dir: Bool
        var size: Int64
        var type: String
        var mode: String
        var modified_at: String
        var owner: String?

        init(_ entry: FileEntry) {
            name = entry.name
            path = entry.path
            is_dir = entry.isDirectory
            size = entry.size
            type = entry.type == .directory ? "dir" : entry.type.rawValue
            mode = String(entry.mode, radix: 8)
            modified_at = isoDate(entry.modifiedMillis)
            owner = entry.owner
        }
    }

    private func sandbox(_ context: AppRequestContext) async throws -> Sandbox {
        let id = try context.parameters.require("id")
        if let signed = context.signedSandboxID {
            guard signed == id else { throw OmniRunError(.forbidden, "the signed URL is for another sandbox") }
            return try await service.sandbox(id, account: nil)
        }
        return try await service.sandbox(id, account: try context.requireAccount())
    }

    static func path(_ value: String?) throws -> String {
        guard let value, !value.isEmpty else { throw OmniRunError(.invalidArgument, "path is required") }
        guard value.utf8.count <= 4096, !value.utf8.contains(0) else { throw OmniRunError(.invalidArgument, "invalid path") }
        return value
    }

    @Sendable func readText(_ request: Request, context: AppRequestContext) async throws -> Response {
        let path = try Self.path(request.query["path"])
        let sandbox = try await sandbox(context)
        let bytes: [UInt8] = try await sandbox.readFile(
            path: path, user: try CommandController.user(request.query["user"]), limit: configuration.maxTextFile)
        return JSON.response(["content": String(decoding: bytes, as: UTF8.self), "path": path])
    }

    struct WriteBody: Decodable {
        var path: String?
        var content: String?
        var user: String?
    }

    @Sendable func writeText(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(WriteBody.self, from: request, limit: configuration.maxJSONBody)
        let path = try Self.path(body.path)
        let sandbox = try await sandbox(context)
        let entry = try await sandbox.writeFile(
            path: path, user: try CommandController.user(body.user), bytes: Array((body.content ?? "").utf8))
        return JSON.response(EntryView(entry))
    }

    @Sendable func remove(_ request: Request, context: AppRequestContext) async throws -> Response {
        let path = try Self.path(request.query["path"])
        let sandbox = try await sandbox(context)
        try await sandbox.removeFile(path: path, user: try CommandController.user(request.query["user"]))
        return JSON.noContent()
    }

    /// Streams the file from the guest to the client (bounded memory).
    @Sendable func download(_ request: Request, context: AppRequestContext) async throws -> Response {
        // A signed URL's own path and user (its query was checked to be exactly these).
        let path = try Self.path(context.signedGrant?.path ?? request.query["path"])
        let user = try CommandController.user(context.signedGrant?.user ?? request.query["user"])
        let sandbox = try await sandbox(context)
        let entry = try await sandbox.fileInfo(path: path, user: user)
        guard !entry.isDirectory else { throw OmniRunError(.invalidArgument, "\(path) is a directory") }
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        let filename = entry.name.replacingOccurrences(of: "\"", with: "")
        headers[.contentDisposition] = "attachment; filename=\"\(filename)\""
        return try await Self.streamFile(sandbox: sandbox, path: path, user: user, headers: headers)
    }

    /// A file of the sandbox as a streamed answer, read with back-pressure. A read that fails
    /// before its first byte is an error status, not a cut body.
    static func streamFile(sandbox: Sandbox, path: String, user: String?, headers: HTTPFields) async throws -> Response {
        let bridge = StreamBridge<ByteBuffer>(capacity: 8)
        let reader = Task {
            do {
                try await sandbox.readFile(path: path, user: user) { chunk in try await bridge.send(chunk) }
                await bridge.finish()
            } catch {
                await bridge.finish(throwing: error)
            }
        }
        let first: ByteBuffer?
        do {
            first = try await bridge.next()
        } catch {
            reader.cancel()
            throw error
        }
        let body = ResponseBody { writer in
            do {
                if let first { try await writer.write(first) }
                while let chunk = try await bridge.next() { try await writer.write(chunk) }
                try await writer.finish(nil)
            } catch {
                reader.cancel()
                await bridge.finish()
                throw error
            }
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// Multipart (`path` field, then `file`) or a raw body with `?path=`, streamed to the guest.
    /// Through a signed URL the path and user are the signed ones: form fields may repeat
    /// them but not change them (403), and a multipart file goes to a temporary name beside
    /// its target and is moved there only once the whole form has been checked, so a refused
    /// upload writes nothing.
    @Sendable func upload(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await sandbox(context)
        let grant = context.signedGrant
        let contentType = request.headers[.contentType] ?? ""
        var path = grant?.path ?? request.query["path"]
        let user = try CommandController.user(grant?.user ?? request.query["user"])
        if !contentType.lowercased().hasPrefix("multipart/form-data") {
            let target = try Self.path(path)
            let entry = try await sandbox.writeFile(
                path: target, user: user, chunks: request.body)
            return JSON.response(EntryView(entry))
        }
        var parser = MultipartParser(boundary: try MultipartParser.boundary(fromContentType: contentType))
        var field: String? = nil
        var fieldValue: [UInt8] = []
        var fieldUser = user
        var writer: (bridge: StreamBridge<ByteBuffer>, task: Task<FileEntry, any Error>)? = nil
        var written: FileEntry? = nil
        /// Signed uploads: where the file waits until the form is checked.
        var staged: String? = nil
        do {
            for try await chunk in request.body {
                for event in try parser.feed(chunk.readableBytesView) {
                    switch event {
                    case .partStart(let name, _):
                        field = name
                        fieldValue = []
                        if grant != nil, !["path", "user", "file"].contains(name) {
                            throw OmniRunError(.forbidden, "a signed upload takes only the form fields path, user and file")
                        }
                        if name == "file" {
                            guard written == nil else { throw OmniRunError(.invalidArgument, "only one file per upload") }
                            var target = try Self.path(path)
                            if grant != nil {
                                target = Self.stagingPath(for: target)
                                staged = target
                            }
                            let bridge = StreamBridge<ByteBuffer>(capacity: 8)
                            let owner = fieldUser
                            let task = Task {
                                try await sandbox.writeFile(path: target, user: owner, chunks: BridgeSequence(bridge: bridge))
                            }
                            writer = (bridge, task)
                        }
                    case .data(let bytes):
                        if field == "file", let writer {
                            try await writer.bridge.send(ByteBuffer(bytes: bytes))
                        } else {
                            fieldValue += bytes
                            if fieldValue.count > 64 << 10 { throw OmniRunError(.invalidArgument, "form field too large") }
                        }
                    case .partEnd:
                        let value = String(decoding: fieldValue, as: UTF8.self)
                        if field == "file", let current = writer {
                            await current.bridge.finish()
                            written = try await current.task.value
                            writer = nil
                        } else if let grant, field == "path" || field == "user" {
                            guard value == (field == "path" ? grant.path : grant.user) else {
                                throw OmniRunError(
                                    .forbidden, "the form's \(field ?? "") differs from the signed URL's; the upload was refused")
                            }
                        } else if field == "path" {
                            path = value
                        } else if field == "user" {
                            fieldUser = try CommandController.user(value)
                        }
                        field = nil
                    }
                }
            }
            if writer != nil {
                throw OmniRunError(.invalidArgument, "the upload ended inside the file part")
            }
            guard written != nil else { throw OmniRunError(.invalidArgument, "the upload has no 'file' part") }
            if let staged, let grant {
                written = try await sandbox.moveFile(from: staged, to: grant.path, user: user)
            }
        } catch {
            if let writer {
                await writer.bridge.finish(throwing: error)
                writer.task.cancel()
                _ = try? await writer.task.value
            }
            if let staged { try? await sandbox.removeFile(path: staged, recursive: false, user: user) }
            throw error
        }
        guard let written else { throw OmniRunError(.invalidArgument, "the upload has no 'file' part") }
        return JSON.response(EntryView(written))
    }

    /// A hidden name beside `target` (same folder, so the final move is a rename).
    static func stagingPath(for target: String) -> String {
        let name = ".omnirun-upload-" + randomBytes(8).map { String(format: "%02x", $0) }.joined()
        guard let slash = target.lastIndex(of: "/") else { return name }
        return String(target[...slash]) + name
    }

    struct BatchItem: Decodable {
        var path: String?
        var content: String?
    }

    @Sendable func batch(_ request: Request, context: AppRequestContext) async throws -> Response {
        let items = try await JSON.decode([BatchItem].self, from: request, limit: configuration.maxJSONBody)
        guard items.count <= 1000 else { throw OmniRunError(.invalidArgument, "at most 1000 files per batch") }
        let user = try CommandController.user(request.query["user"])
        let sandbox = try await sandbox(context)
        var entries: [EntryView] = []
        for item in items {
            let entry = try await sandbox.writeFile(
                path: try Self.path(item.path), user: user, bytes: Array((item.content ?? "").utf8))
            entries.append(EntryView(entry))
        }
        return JSON.response(entries)
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let path = request.query["path"].flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        let depthText = request.query["depth"] ?? "1"
        guard let depth = Int(depthText), (1...32).contains(depth) else {
            throw OmniRunError(.invalidArgument, "depth must be an integer between 1 and 32")
        }
        let sandbox = try await sandbox(context)
        let entries = try await sandbox.listDirectory(
            path: try Self.path(path), depth: depth, user: try CommandController.user(request.query["user"]))
        return JSON.response(entries.map(EntryView.init))
    }

    @Sendable func exists(_ request: Request, context: AppRequestContext) async throws -> Response {
        let path = try Self.path(request.query["path"])
        let sandbox = try await sandbox(context)
        do {
            _ = try await sandbox.fileInfo(path: path, user: try CommandController.user(request.query["user"]))
            return JSON.response(["exists": true])
        } catch let error as OmniRunError where error.code == .notFound {
            return JSON.response(["exists": false])
        }
    }

    @Sendable func info(_ request: Request, context: AppRequestContext) async throws -> Response {
        let path = try Self.path(request.query["path"])
        let sandbox = try await sandbox(context)
        let entry = try await sandbox.fileInfo(path: path, user: try CommandController.user(request.query["user"]))
        return JSON.response(EntryView(entry))
    }

    struct RenameBody: Decodable {
        var oldPath: String?
        var newPath: String?
        var user: String?
    }

    @Sendable func rename(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(RenameBody.self, from: request, limit: 64 << 10)
        let from = try Self.path(body.oldPath)
        let to = try Self.path(body.newPath)
        let sandbox = try await sandbox(context)
        let entry = try await sandbox.moveFile(from: from, to: to, user: try CommandController.user(body.user))
        return JSON.response(EntryView(entry))
    }

    struct PathBody: Decodable {
        var path: String?
        var user: String?
    }

    @Sendable func mkdir(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSON.decode(PathBody.self, from: request, limit: 64 << 10)
        let path = try Self.path(body.path)
        let sandbox = try await sandbox(context)
        let entry = try await sandbox.makeDirectory(path: path, user: try CommandController.user(body.user))
        return JSON.response(EntryView(entry))
    }

    struct WatchView: Encodable {
        var type: String
        var path: String
        var name: String
        var timestamp: String
    }

    @Sendable func watch(_ request: Request, context: AppRequestContext) async throws -> Response {
        let path = try Self.path(request.query["path"])
        let recursive = request.query["recursive"] == "true"
        let user = try CommandController.user(request.query["user"])
        let sandbox = try await sandbox(context)
        let entry = try await sandbox.fileInfo(path: path, user: user)
        guard entry.isDirectory else { throw OmniRunError(.invalidArgument, "\(path) is not a directory") }
        let service = self.service
        return SSE.response { send in
            try await sandbox.watchDirectory(path: path, recursive: recursive, user: user) { event in
                await service.touch(sandbox.id)
                try await send(
                    SSE.line(
                        WatchView(type: event.type.rawValue, path: event.path, name: event.name, timestamp: isoDate(event.timestampMillis))))
            }
        }
    }
}
