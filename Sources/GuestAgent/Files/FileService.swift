import AgentProtocol
import CAgentSupport
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// File operations, each performed on a blocking-I/O thread under the file-system
/// identity of the requesting user, so permissions are the user's own.
struct FileService: Sendable {
    let pool: NIOThreadPool
    let identity: SandboxIdentity
    /// Reads of a file being sent to the host.
    static let chunkSize = 1 << 20
    /// Received bytes gathered before one write to a file.
    static let writeBatchSize = 1 << 20

    func user(_ name: String?) async throws -> GuestUser {
        let fallback = await identity.snapshot().defaultUser
        return try UserDatabase.lookup(name ?? fallback)
    }

    /// Runs `body` on a pool thread with the fs identity of `user`. A switch that does not
    /// take (a uid or gid the kernel reads as "no change", too many groups) fails the
    /// operation: it never runs as root instead.
    func run<T: Sendable>(as user: GuestUser, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try user.checkSwitchable()
        return try await pool.runIfActive {
            let groups = user.groups.map { gid_t($0) }
            let failed = groups.withUnsafeBufferPointer {
                omr_set_fs_identity(uid_t(user.uid), gid_t(user.gid), $0.baseAddress, Int32(clamping: $0.count))
            }
            guard failed == 0 else {
                throw AgentFailure(
                    status: 403, code: AgentErrorCode.permissionDenied,
                    message: "cannot act as user '\(user.name)' (uid \(user.uid), gid \(user.gid), \(groups.count) groups): "
                        + String(cString: strerror(failed)))
            }
            defer { _ = omr_set_fs_identity(0, 0, nil, 0) }
            return try body()
        }
    }

    /// Makes a path absolute: relative paths are taken from the user's home.
    static func absolute(_ path: String, home: String) throws -> String {
        guard !path.isEmpty else { throw AgentFailure.badRequest("path is required") }
        guard !path.utf8.contains(0) else { throw AgentFailure.badRequest("path contains a NUL byte") }
        let joined = path.hasPrefix("/") ? path : home + "/" + path
        var parts: [Substring] = []
        for part in joined.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    // MARK: stat and list

    static func entry(path: String) throws -> FileEntry {
        var st = Glibc.stat()
        guard lstat(path, &st) == 0 else { throw AgentFailure.errno(errno, "stat", path: path) }
        return entry(path: path, st)
    }

    static func entry(path: String, _ st: stat) -> FileEntry {
        let kind: FileEntry.Kind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        let name = path == "/" ? "/" : String(path.split(separator: "/").last ?? "")
        let millis = Int64(st.st_mtim.tv_sec) * 1000 + Int64(st.st_mtim.tv_nsec) / 1_000_000
        return FileEntry(
            name: name, path: path, type: kind, size: Int64(st.st_size), mode: UInt32(st.st_mode & 0o7777),
            modifiedMillis: millis, owner: UserDatabase.name(ofUID: st.st_uid))
    }

    func stat(path: String, user name: String?) async throws -> FileEntry {
        let user = try await user(name)
        let path = try Self.absolute(path, home: user.home)
        return try await run(as: user) { try Self.entry(path: path) }
    }

    func list(path: String, depth: Int, user name: String?) async throws -> [FileEntry] {
        let user = try await user(name)
        let root = try Self.absolute(path, home: user.home)
        let depth = max(1, min(depth, 32))
        return try await run(as: user) {
            let top = try Self.entry(path: root)
            guard top.type == .directory else {
                throw AgentFailure(status: 400, code: AgentErrorCode.invalidArgument, message: "not a directory: \(root)")
            }
            var result: [FileEntry] = []
            var queue: [(String, Int)] = [(root, 1)]
            while !queue.isEmpty {
                let (dir, level) = queue.removeFirst()
                let names: [String]
                do { names = try Self.directoryNames(dir) } catch where dir != root { continue }
                for name in names {
                    let child = dir == "/" ? "/" + name : dir + "/" + name
                    guard let entry = try? Self.entry(path: child) else { continue }
                    result.append(entry)
                    if entry.type == .directory, level < depth { queue.append((child, level + 1)) }
                    if result.count >= 100_000 { return result }
                }
            }
            return result
        }
    }

    static func directoryNames(_ dir: String) throws -> [String] {
        guard let handle = opendir(dir) else { throw AgentFailure.errno(errno, "list", path: dir) }
        defer { closedir(handle) }
        var names: [String] = []
        while let ent = readdir(handle) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        return names.sorted()
    }

    // MARK: mkdir, move, remove

    /// `mkdir -p`; new directories belong to the user.
    static func makeDirectories(_ path: String) throws {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 {
                let err = errno
                if err == EEXIST, omr_is_directory(current) == 1 { continue }
                throw AgentFailure.errno(err == EEXIST ? ENOTDIR : err, "mkdir", path: current)
            }
        }
    }

    func makeDirectory(_ request: MakeDirectoryRequest) async throws -> FileEntry {
        let user = try await user(request.user)
        let path = try Self.absolute(request.path, home: user.home)
        return try await run(as: user) {
            try Self.makeDirectories(path)
            return try Self.entry(path: path)
        }
    }

    func move(_ request: MoveRequest) async throws -> FileEntry {
        let user = try await user(request.user)
        let from = try Self.absolute(request.from, home: user.home)
        let to = try Self.absolute(request.to, home: user.home)
        return try await run(as: user) {
            let parent = String(to[..<(to.lastIndex(of: "/") ?? to.startIndex)])
            if !parent.isEmpty { try Self.makeDirectories(parent) }
            guard rename(from, to) == 0 else { throw AgentFailure.errno(errno, "move", path: from) }
            return try Self.entry(path: to)
        }
    }

    func remove(_ request: RemoveRequest) async throws {
        let user = try await user(request.user)
        let path = try Self.absolute(request.path, home: user.home)
        guard path != "/" else { throw AgentFailure.badRequest("refusing to remove /") }
        try await run(as: user) { try Self.removeTree(path, recursive: request.recursive) }
    }

    static func removeTree(_ path: String, recursive: Bool) throws {
        var st = Glibc.stat()
        guard lstat(path, &st) == 0 else { throw AgentFailure.errno(errno, "remove", path: path) }
        if st.st_mode & S_IFMT == S_IFDIR {
            if recursive {
                for name in try directoryNames(path) { try removeTree(path + "/" + name, recursive: true) }
            }
            guard rmdir(path) == 0 else { throw AgentFailure.errno(errno, "remove", path: path) }
        } else {
            guard unlink(path) == 0 else { throw AgentFailure.errno(errno, "remove", path: path) }
        }
    }

    // MARK: read and write

    /// Opens a regular file for reading as the user; returns the fd and its size.
    func openForReading(path: String, user name: String?) async throws -> (fd: Int32, size: Int64, path: String) {
        let user = try await user(name)
        let path = try Self.absolute(path, home: user.home)
        return try await run(as: user) {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw AgentFailure.errno(errno, "read", path: path) }
            var st = Glibc.stat()
            fstat(fd, &st)
            if st.st_mode & S_IFMT == S_IFDIR {
                close(fd)
                throw AgentFailure(status: 400, code: AgentErrorCode.invalidArgument, message: "is a directory: \(path)")
            }
            return (fd, Int64(st.st_size), path)
        }
    }

    func readChunk(fd: Int32) async throws -> ByteBuffer? {
        try await pool.runIfActive {
            var buffer = ByteBufferAllocator().buffer(capacity: Self.chunkSize)
            let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.chunkSize) { ptr in
                while true {
                    let n = read(fd, ptr.baseAddress, Self.chunkSize)
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 { throw AgentFailure.errno(errno, "read", path: "fd") }
                    return n
                }
            }
            return n == 0 ? nil : buffer
        }
    }

    /// Opens (creating parents) a file for writing as the user.
    func openForWriting(path: String, user name: String?, mode: UInt32?, append: Bool) async throws -> (fd: Int32, path: String) {
        let user = try await user(name)
        let path = try Self.absolute(path, home: user.home)
        return try await run(as: user) {
            if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
                try Self.makeDirectories(String(path[..<slash]))
            }
            let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC)
            let fd = open(path, flags, mode_t(mode ?? 0o644))
            guard fd >= 0 else { throw AgentFailure.errno(errno, "write", path: path) }
            if let mode { fchmod(fd, mode_t(mode)) }
            return (fd, path)
        }
    }

    func writeChunk(fd: Int32, _ buffer: ByteBuffer, path: String) async throws {
        try await pool.runIfActive {
            try buffer.withUnsafeReadableBytes { ptr in
                var offset = 0
                while offset < ptr.count {
                    let n = write(fd, ptr.baseAddress! + offset, ptr.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 { throw AgentFailure.errno(errno, "write", path: path) }
                    offset += n
                }
            }
        }
    }

    /// Closes a written file (ext4 reserves blocks at write time, so a full disk
    /// already failed the write) and describes it.
    func finishWriting(fd: Int32, path: String) async throws -> FileEntry {
        try await pool.runIfActive {
            if close(fd) != 0 { throw AgentFailure.errno(errno, "write", path: path) }
            return try Self.entry(path: path)
        }
    }

    func closeFD(_ fd: Int32) async {
        _ = try? await pool.runIfActive { close(fd) }
    }
}
