import AgentProtocol
import Foundation
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunError
import SandboxRuntime

/// envd's `filesystem.Filesystem` service (Connect, JSON) over the sandbox's agent.
struct E2BFilesystemRPC {
    let access: E2BAccess
    let watchers: E2BWatchers

    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.post("/filesystem.Filesystem/Stat", use: stat)
        router.post("/filesystem.Filesystem/MakeDir", use: makeDir)
        router.post("/filesystem.Filesystem/Move", use: move)
        router.post("/filesystem.Filesystem/ListDir", use: listDir)
        router.post("/filesystem.Filesystem/Remove", use: remove)
        router.post("/filesystem.Filesystem/WatchDir", use: watchDir)
        router.post("/filesystem.Filesystem/CreateWatcher", use: createWatcher)
        router.post("/filesystem.Filesystem/GetWatcherEvents", use: getWatcherEvents)
        router.post("/filesystem.Filesystem/RemoveWatcher", use: removeWatcher)
        return router
    }

    /// envd's `EntryInfo`.
    struct EntryView: Encodable {
        var name: String
        var type: String
        var path: String
        var size: Int64
        var mode: UInt32
        var permissions: String
        var owner: String
        var group: String
        var modifiedTime: String
        var isSymlink: Bool?

        init(_ entry: FileEntry) {
            name = entry.name
            type =
                switch entry.type {
                case .directory: "FILE_TYPE_DIRECTORY"
                case .symlink: "FILE_TYPE_SYMLINK"
                case .file, .other: "FILE_TYPE_FILE"
                }
            path = entry.path
            size = entry.size
            mode = entry.mode & 0o7777
            permissions = Self.permissions(entry)
            owner = entry.owner ?? ""
            group = entry.owner ?? ""
            modifiedTime = isoDate(entry.modifiedMillis)
            isSymlink = entry.type == .symlink ? true : nil
        }

        /// `ls -l`'s letters: the type, then rwx for owner, group and others.
        static func permissions(_ entry: FileEntry) -> String {
            let kind =
                switch entry.type {
                case .directory: "d"
                case .symlink: "l"
                default: "-"
                }
            let letters = Array("rwxrwxrwx")
            var text = kind
            for bit in 0..<9 { text.append(entry.mode & (0o400 >> UInt32(bit)) != 0 ? letters[bit] : "-") }
            return text
        }
    }

    struct EntryAnswer: Encodable { var entry: EntryView }
    struct EntriesAnswer: Encodable { var entries: [EntryView] }
    struct Empty: Encodable {}

    static func path(_ message: ProtoJSON, _ field: String = "path") throws -> String {
        guard let path = try message[field]?.string(field), !path.isEmpty else {
            throw ConnectError(.invalidArgument, "\(field) is required")
        }
        return path
    }

    @Sendable func stat(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.pathRequest, output: EnvdSchemas.entryResponse)
        let path = try Self.path(message)
        let user = try E2BProcessRPC.user(request)
        let sandbox = try await access.sandbox(request, context: context)
        return call.respond(EntryAnswer(entry: EntryView(try await sandbox.fileInfo(path: path, user: user))))
    }

    /// Makes the directory and its parents; one that exists is `already_exists` (envd's answer).
    @Sendable func makeDir(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.pathRequest, output: EnvdSchemas.entryResponse)
        let path = try Self.path(message)
        let user = try E2BProcessRPC.user(request)
        let sandbox = try await access.sandbox(request, context: context)
        if let existing = try? await sandbox.fileInfo(path: path, user: user) {
            throw ConnectError(.alreadyExists, "\(existing.isDirectory ? "directory" : "file") \(path) already exists")
        }
        return call.respond(EntryAnswer(entry: EntryView(try await sandbox.makeDirectory(path: path, user: user))))
    }

    @Sendable func move(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.moveRequest, output: EnvdSchemas.entryResponse)
        let source = try Self.path(message, "source")
        let destination = try Self.path(message, "destination")
        let user = try E2BProcessRPC.user(request)
        let sandbox = try await access.sandbox(request, context: context)
        let entry = try await sandbox.moveFile(from: source, to: destination, user: user)
        return call.respond(EntryAnswer(entry: EntryView(entry)))
    }

    @Sendable func listDir(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.listDirRequest, output: EnvdSchemas.listDirResponse)
        let path = try Self.path(message)
        let depth = try message["depth"]?.integer("depth", in: 0...64) ?? 1
        let user = try E2BProcessRPC.user(request)
        let sandbox = try await access.sandbox(request, context: context)
        let entries = try await sandbox.listDirectory(path: path, depth: max(Int(depth), 1), user: user)
        return call.respond(EntriesAnswer(entries: entries.map(EntryView.init)))
    }

    @Sendable func remove(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.pathRequest, output: EnvdSchemas.empty)
        let path = try Self.path(message)
        let user = try E2BProcessRPC.user(request)
        let sandbox = try await access.sandbox(request, context: context)
        // envd answers not_found for a path that is not there (the agent's remove would not).
        _ = try await sandbox.fileInfo(path: path, user: user)
        try await sandbox.removeFile(path: path, recursive: true, user: user)
        return call.respond(Empty())
    }

    /// What a watch asks for; the flags of newer envd versions are refused, not ignored.
    static func watchRequest(_ message: ProtoJSON) throws -> (path: String, recursive: Bool) {
        if try message["includeEntry"]?.bool("includeEntry") == true {
            throw ConnectError(.unimplemented, "watch events with entries (include_entry) are not supported")
        }
        if try message["allowNetworkMounts"]?.bool("allowNetworkMounts") == true {
            throw ConnectError(.unimplemented, "watching network mounts is not supported")
        }
        return (try path(message), try message["recursive"]?.bool("recursive") ?? false)
    }

    /// envd's `FilesystemEvent`: the name relative to the watched directory and the event's type.
    struct EventView: Encodable {
        var name: String
        var type: String

        init(_ event: WatchEvent, root: String) {
            let prefix = root.hasSuffix("/") ? root : root + "/"
            name = event.path.hasPrefix(prefix) ? String(event.path.dropFirst(prefix.count)) : event.name
            type =
                switch event.type {
                case .create: "EVENT_TYPE_CREATE"
                case .write: "EVENT_TYPE_WRITE"
                case .remove: "EVENT_TYPE_REMOVE"
                case .rename: "EVENT_TYPE_RENAME"
                }
        }
    }

    struct WatchMessage: Encodable {
        var start: Empty?
        var filesystem: EventView?
        var keepalive: Empty?
    }

    /// The streaming watch (the async SDK): `start{}` once the agent watches, then events.
    @Sendable func watchDir(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.serverStream(
            request, input: EnvdSchemas.watchRequest, output: EnvdSchemas.watchDirResponse)
        let (path, recursive) = try Self.watchRequest(message)
        let user = try E2BProcessRPC.user(request)
        let sandbox = try await access.sandbox(request, context: context)
        let root = try await sandbox.fileInfo(path: path, user: user)
        guard root.isDirectory else { throw ConnectError(.invalidArgument, "\(path) is not a directory") }
        return call.stream(request, keepalive: WatchMessage(keepalive: Empty())) { send in
            try await sandbox.watchDirectory(
                path: root.path, recursive: recursive, user: user,
                onReady: { try await send(call.envelope(WatchMessage(start: Empty()))) },
                onEvent: { event in try await send(call.envelope(WatchMessage(filesystem: EventView(event, root: root.path)))) })
        }
    }

    struct WatcherAnswer: Encodable { var watcherId: String }
    struct EventsAnswer: Encodable { var events: [EventView] }

    /// The polling watch (the sync SDK): a watcher kept here, its events fetched by id.
    @Sendable func createWatcher(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.watchRequest, output: EnvdSchemas.watcherID)
        let (path, recursive) = try Self.watchRequest(message)
        let user = try E2BProcessRPC.user(request)
        let sandbox = try await access.sandbox(request, context: context)
        let root = try await sandbox.fileInfo(path: path, user: user)
        guard root.isDirectory else { throw ConnectError(.invalidArgument, "\(path) is not a directory") }
        let id = try await watchers.start(sandbox: sandbox, root: root.path, recursive: recursive, user: user)
        return call.respond(WatcherAnswer(watcherId: id))
    }

    static func watcherID(_ message: ProtoJSON) throws -> String {
        guard let id = try message["watcherId"]?.string("watcherId", limit: 64), !id.isEmpty else {
            throw ConnectError(.invalidArgument, "watcherId is required")
        }
        return id
    }

    @Sendable func getWatcherEvents(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.watcherID, output: EnvdSchemas.watcherEventsResponse)
        let id = try Self.watcherID(message)
        let sandbox = try await access.sandbox(request, context: context)
        let (root, events) = try await watchers.take(id, sandbox: sandbox.id.description)
        return call.respond(EventsAnswer(events: events.map { EventView($0, root: root) }))
    }

    @Sendable func removeWatcher(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (call, message) = try await ConnectCall.unary(request, input: EnvdSchemas.watcherID, output: EnvdSchemas.empty)
        let id = try Self.watcherID(message)
        let sandbox = try await access.sandbox(request, context: context)
        try await watchers.remove(id, sandbox: sandbox.id.description)
        return call.respond(Empty())
    }
}

/// The polling watchers of the sync SDK: each follows a directory in a task of its own and
/// keeps at most `maxEvents` events until they are fetched (older ones are dropped). A sandbox
/// has at most `perSandbox` of them and the server `total`; one not polled for `idleLimit` is
/// stopped, as is every watcher of a sandbox that ends.
actor E2BWatchers {
    static let maxEvents = 1024
    static let perSandbox = 16
    static let total = 512
    static let idleLimit: Duration = .seconds(600)

    private struct Watcher {
        var sandbox: String
        var root: String
        var events: [WatchEvent] = []
        var lastPoll: ContinuousClock.Instant
        var task: Task<Void, Never>?
        var failure: String?
    }

    private var watchers: [String: Watcher] = [:]

    func start(sandbox: Sandbox, root: String, recursive: Bool, user: String?) async throws -> String {
        sweep()
        let key = sandbox.id.description
        guard watchers.count < Self.total else {
            throw ConnectError(.resourceExhausted, "the server follows \(Self.total) watchers already; remove some")
        }
        guard watchers.values.filter({ $0.sandbox == key }).count < Self.perSandbox else {
            throw ConnectError(.resourceExhausted, "a sandbox has at most \(Self.perSandbox) watchers; remove one first")
        }
        let id = randomID("w", bytes: 12)
        watchers[id] = Watcher(sandbox: key, root: root, lastPoll: .now)
        let ready = AsyncStream<Result<Void, any Error>>.makeStream()
        watchers[id]?.task = Task {
            do {
                try await sandbox.watchDirectory(
                    path: root, recursive: recursive, user: user,
                    onReady: { ready.continuation.yield(.success(())) },
                    onEvent: { event in await self.append(event, to: id) })
                self.fail(id, "the watch ended")
            } catch {
                ready.continuation.yield(.failure(error))
                self.fail(id, APIError.normalize(error).message)
            }
            ready.continuation.finish()
        }
        for await outcome in ready.stream {
            if case .failure(let error) = outcome {
                watchers[id] = nil
                throw error
            }
            break
        }
        return id
    }

    private func append(_ event: WatchEvent, to id: String) {
        guard watchers[id] != nil else { return }
        watchers[id]?.events.append(event)
        if let count = watchers[id]?.events.count, count > Self.maxEvents {
            watchers[id]?.events.removeFirst(count - Self.maxEvents)
        }
    }

    private func fail(_ id: String, _ message: String) {
        watchers[id]?.failure = message
    }

    func take(_ id: String, sandbox: String) throws -> (root: String, events: [WatchEvent]) {
        sweep()
        guard var watcher = watchers[id], watcher.sandbox == sandbox else {
            throw ConnectError(.notFound, "no watcher \(id.prefix(64))")
        }
        let events = watcher.events
        if events.isEmpty, let failure = watcher.failure {
            watchers[id] = nil
            throw ConnectError(.unavailable, "the watcher stopped: \(failure)")
        }
        watcher.events = []
        watcher.lastPoll = .now
        watchers[id] = watcher
        return (watcher.root, events)
    }

    func remove(_ id: String, sandbox: String) throws {
        guard let watcher = watchers[id], watcher.sandbox == sandbox else {
            throw ConnectError(.notFound, "no watcher \(id.prefix(64))")
        }
        watcher.task?.cancel()
        watchers[id] = nil
    }

    /// Stops the watchers nobody polls any more, and those whose watch ended long ago.
    private func sweep() {
        let now = ContinuousClock.now
        for (id, watcher) in watchers where now - watcher.lastPoll > Self.idleLimit {
            watcher.task?.cancel()
            watchers[id] = nil
        }
    }

    /// Stops every watcher (the server is stopping).
    func stopAll() {
        for watcher in watchers.values { watcher.task?.cancel() }
        watchers = [:]
    }
}
