import AgentClient
import AgentProtocol
import NIOCore

/// Files in the sandbox, as the agent keeps them (`user` is whose rights apply; nil is
/// the agent's default).
extension Sandbox {
    public func fileInfo(path: String, user: String? = nil) async throws -> FileEntry {
        try await agent.stat(path: path, user: user)
    }

    public func listDirectory(path: String, depth: Int = 1, user: String? = nil) async throws -> [FileEntry] {
        try await agent.list(path: path, depth: depth, user: user)
    }

    public func makeDirectory(path: String, user: String? = nil) async throws -> FileEntry {
        try await agent.makeDirectory(path: path, user: user)
    }

    public func moveFile(from: String, to: String, user: String? = nil) async throws -> FileEntry {
        try await agent.move(from: from, to: to, user: user)
    }

    public func removeFile(path: String, recursive: Bool = true, user: String? = nil) async throws {
        try await agent.remove(path: path, recursive: recursive, user: user)
    }

    /// Streams a file to `onChunk` (back-pressured); returns the size the agent announced.
    @discardableResult
    public func readFile(
        path: String, user: String? = nil, onChunk: @Sendable (ByteBuffer) async throws -> Void
    ) async throws -> Int64? {
        try await agent.readFile(path: path, user: user, onChunk: onChunk)
    }

    /// A whole file, failing with `.payloadTooLarge` past `limit` bytes.
    public func readFile(path: String, user: String? = nil, limit: Int = 256 << 20) async throws -> [UInt8] {
        try await agent.readFile(path: path, user: user, limit: limit)
    }

    /// Writes a file from a sequence of chunks (back-pressured), creating its parents.
    public func writeFile<Chunks: AsyncSequence & Sendable>(
        path: String, user: String? = nil, mode: UInt32? = nil, append: Bool = false, chunks: Chunks
    ) async throws -> FileEntry where Chunks.Element == ByteBuffer {
        try await agent.writeFile(path: path, user: user, mode: mode, append: append, chunks: chunks)
    }

    public func writeFile(path: String, user: String? = nil, mode: UInt32? = nil, bytes: [UInt8]) async throws -> FileEntry {
        try await agent.writeFile(path: path, user: user, mode: mode, bytes: bytes)
    }

    /// Watches a directory; events are delivered until the caller cancels or throws.
    /// `onReady` runs once the watch is in place (events from then on are seen).
    public func watchDirectory(
        path: String, recursive: Bool, user: String? = nil, onReady: (@Sendable () async throws -> Void)? = nil,
        onEvent: @escaping @Sendable (WatchEvent) async throws -> Void
    ) async throws {
        try await agent.watch(path: path, recursive: recursive, user: user, onReady: onReady, onEvent: onEvent)
    }
}
