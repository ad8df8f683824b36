import AgentProtocol
import Foundation

/// What a fake guest keeps when its machine is saved (a template snapshot, a pause, a
/// fork): its file system and who it is. `MemoryMachine` writes it as JSON where a real
/// machine's memory would go, so a resumed or forked sandbox finds its files again.
/// Processes are not part of it: a fake guest comes back with none running.
public struct FakeGuestState: Codable, Sendable, Equatable {
    /// A file (with contents) or a directory (without).
    public struct Node: Codable, Sendable, Equatable {
        public var contents: Data?
        public var mode: UInt32
        public var owner: String
        public var modifiedMillis: Int64

        public var isDirectory: Bool { contents == nil }
    }

    /// Every file and directory by absolute path (`/` included).
    public var nodes: [String: Node]
    /// What the host's `init` gave it (nil: never initialised, as in a template snapshot).
    public var sandboxID: String?
    public var hostname: String?
    public var env: [String: String] = [:]
    public var defaultUser: String = "user"
    public var defaultCwd: String?

    /// A freshly booted guest: `/`, `/root`, `/home/user`, `/tmp`.
    public static func fresh() -> FakeGuestState {
        var state = FakeGuestState(nodes: [:])
        for (path, owner) in [("/", "root"), ("/root", "root"), ("/home", "root"), ("/home/user", "user"), ("/tmp", "root")] {
            state.nodes[path] = Node(contents: nil, mode: path == "/tmp" ? 0o1777 : 0o755, owner: owner, modifiedMillis: guestClockMillis())
        }
        return state
    }

    /// The contents of a file, if there is one at `path` (absolute).
    public func file(_ path: String) -> Data? { nodes[path]?.contents }
}

/// An answer the agent gives with an error status (`AgentErrorBody`).
struct FakeGuestError: Error, Sendable {
    var status: Int
    var code: String
    var message: String

    static func notFound(_ message: String) -> FakeGuestError { .init(status: 404, code: AgentErrorCode.notFound, message: message) }
    static func badRequest(_ message: String) -> FakeGuestError {
        .init(status: 400, code: AgentErrorCode.invalidArgument, message: message)
    }
    static func conflict(_ message: String) -> FakeGuestError { .init(status: 409, code: AgentErrorCode.conflict, message: message) }
}

func guestClockMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// The file operations of the agent's routes, on `nodes`.
extension FakeGuestState {
    static func home(of user: String) -> String { user == "root" ? "/root" : "/home/\(user)" }

    /// An absolute, normalised path (relative paths start at the user's home, as in the real agent).
    func absolute(_ path: String, user: String?) throws -> String {
        guard !path.isEmpty, !path.utf8.contains(0) else { throw FakeGuestError.badRequest("invalid path '\(path)'") }
        let joined = path.hasPrefix("/") ? path : Self.home(of: user ?? defaultUser) + "/" + path
        var parts: [Substring] = []
        for part in joined.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), path != "/" else { return "/" }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }

    static func name(of path: String) -> String {
        path == "/" ? "/" : String(path.split(separator: "/").last ?? "")
    }

    func entry(_ path: String) -> FileEntry? {
        guard let node = nodes[path] else { return nil }
        return FileEntry(
            name: Self.name(of: path), path: path, type: node.isDirectory ? .directory : .file, size: Int64(node.contents?.count ?? 4096),
            mode: node.mode, modifiedMillis: node.modifiedMillis, owner: node.owner)
    }

    func stat(_ path: String) throws -> FileEntry {
        guard let entry = entry(path) else { throw FakeGuestError.notFound("no such file or directory: \(path)") }
        return entry
    }

    /// Paths directly inside a directory, sorted.
    func children(of directory: String) -> [String] {
        let prefix = directory == "/" ? "/" : directory + "/"
        return nodes.keys.filter { $0 != "/" && $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }.sorted()
    }

    func list(_ root: String, depth: Int) throws -> [FileEntry] {
        guard try stat(root).type == .directory else { throw FakeGuestError.badRequest("not a directory: \(root)") }
        var result: [FileEntry] = []
        var queue: [(String, Int)] = [(root, 1)]
        while !queue.isEmpty {
            let (directory, level) = queue.removeFirst()
            for child in children(of: directory) {
                guard let entry = entry(child) else { continue }
                result.append(entry)
                if entry.type == .directory, level < max(1, min(depth, 32)) { queue.append((child, level + 1)) }
            }
        }
        return result
    }

    func read(_ path: String) throws -> Data {
        guard let node = nodes[path] else { throw FakeGuestError.notFound("no such file or directory: \(path)") }
        guard let contents = node.contents else { throw FakeGuestError.badRequest("is a directory: \(path)") }
        return contents
    }

    /// `mkdir -p`.
    mutating func makeDirectories(_ path: String, owner: String) throws {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if let node = nodes[current] {
                guard node.isDirectory else { throw FakeGuestError.notFound("not a directory: \(current)") }
                continue
            }
            nodes[current] = Node(contents: nil, mode: 0o755, owner: owner, modifiedMillis: guestClockMillis())
        }
    }

    /// Writes (or appends to) a file, creating its parents.
    mutating func write(_ path: String, _ bytes: [UInt8], mode: UInt32?, append: Bool, owner: String) throws -> FileEntry {
        guard path != "/" else { throw FakeGuestError.badRequest("is a directory: /") }
        if let node = nodes[path], node.isDirectory { throw FakeGuestError.badRequest("is a directory: \(path)") }
        try makeDirectories(Self.parent(of: path), owner: owner)
        var node = nodes[path] ?? Node(contents: Data(), mode: mode ?? 0o644, owner: owner, modifiedMillis: 0)
        node.contents = (append ? node.contents ?? Data() : Data()) + Data(bytes)
        if let mode { node.mode = mode }
        node.modifiedMillis = guestClockMillis()
        nodes[path] = node
        return try stat(path)
    }

    mutating func move(from: String, to: String) throws -> FileEntry {
        guard nodes[from] != nil else { throw FakeGuestError.notFound("no such file or directory: \(from)") }
        guard from != "/", to != "/", !to.hasPrefix(from + "/") else { throw FakeGuestError.badRequest("cannot move \(from) to \(to)") }
        try makeDirectories(Self.parent(of: to), owner: nodes[from]?.owner ?? "root")
        for path in nodes.keys.sorted() where path == from || path.hasPrefix(from + "/") {
            nodes[to + path.dropFirst(from.count)] = nodes.removeValue(forKey: path)
        }
        return try stat(to)
    }

    mutating func remove(_ path: String, recursive: Bool) throws {
        guard nodes[path] != nil else { throw FakeGuestError.notFound("no such file or directory: \(path)") }
        guard path != "/" else { throw FakeGuestError.badRequest("cannot remove /") }
        let inside = nodes.keys.filter { $0.hasPrefix(path + "/") }
        guard recursive || inside.isEmpty else { throw FakeGuestError.conflict("directory not empty: \(path)") }
        for child in inside { nodes[child] = nil }
        nodes[path] = nil
    }
}
