import AgentProtocol
import CAgentSupport
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Watches a directory (optionally its whole tree) with inotify and yields
/// create / write / remove / rename events.
enum DirectoryWatcher {
    static func watch(
        path: String, recursive: Bool, user: GuestUser, files: FileService, group: any EventLoopGroup
    ) async throws -> (AsyncStream<WatchEvent>, any Channel) {
        let root = try FileService.absolute(path, home: user.home)
        let entry = try await files.run(as: user) { try FileService.entry(path: root) }
        guard entry.type == .directory else { throw AgentFailure.badRequest("not a directory: \(root)") }
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw AgentFailure.errno(errno, "watch", path: root) }
        let state = WatchState(fd: fd, recursive: recursive)
        state.add(root)
        if recursive {
            var queue = [root]
            while let dir = queue.popLast() {
                for name in (try? FileService.directoryNames(dir)) ?? [] {
                    let child = dir == "/" ? "/" + name : dir + "/" + name
                    var st = stat()
                    if lstat(child, &st) == 0, st.st_mode & S_IFMT == S_IFDIR {
                        state.add(child)
                        queue.append(child)
                    }
                }
            }
        }
        let (stream, continuation) = AsyncStream<WatchEvent>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        let channel = try await NIOPipeBootstrap(group: group)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(InotifyDecoder(state: state, continuation: continuation))
                }
            }
            .takingOwnershipOfDescriptor(input: fd).get()
        continuation.onTermination = { _ in channel.close(promise: nil) }
        return (stream, channel)
    }
}

/// Watch descriptors to paths; touched only on the channel's event loop.
final class WatchState: @unchecked Sendable {
    let fd: Int32
    let recursive: Bool
    var paths: [Int32: String] = [:]

    init(fd: Int32, recursive: Bool) {
        self.fd = fd
        self.recursive = recursive
    }

    func add(_ path: String) {
        let mask = UInt32(IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF)
        let wd = inotify_add_watch(fd, path, mask)
        if wd >= 0 { paths[wd] = path }
    }
}

final class InotifyDecoder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let state: WatchState
    private let continuation: AsyncStream<WatchEvent>.Continuation

    init(state: WatchState, continuation: AsyncStream<WatchEvent>.Continuation) {
        self.state = state
        self.continuation = continuation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let now = Clock.nowMillis()
        var lastWrite: String? = nil
        buffer.withUnsafeReadableBytes { raw in
            guard let base = raw.baseAddress?.assumingMemoryBound(to: CChar.self) else { return }
            var offset = 0
            while offset < raw.count {
                var wd: Int32 = 0
                var mask: UInt32 = 0
                var namePtr: UnsafePointer<CChar>? = nil
                let length = Int(omr_inotify_record(base, Int32(offset), &wd, &mask, &namePtr))
                offset += length
                guard let dir = state.paths[wd] else { continue }
                let name = namePtr.map { String(cString: $0) } ?? ""
                if mask & UInt32(IN_IGNORED) != 0 { state.paths[wd] = nil; continue }
                if name.isEmpty { continue }
                let path = dir == "/" ? "/" + name : dir + "/" + name
                let kind: WatchEvent.Kind
                if mask & UInt32(IN_CREATE) != 0 {
                    kind = .create
                    if state.recursive, mask & UInt32(IN_ISDIR) != 0 { state.add(path) }
                } else if mask & UInt32(IN_MODIFY) != 0 {
                    if lastWrite == path { continue }
                    kind = .write
                } else if mask & UInt32(IN_DELETE) != 0 {
                    kind = .remove
                } else if mask & UInt32(IN_MOVED_FROM) != 0 || mask & UInt32(IN_MOVED_TO) != 0 {
                    kind = .rename
                    if state.recursive, mask & UInt32(IN_MOVED_TO) != 0, mask & UInt32(IN_ISDIR) != 0 { state.add(path) }
                } else {
                    continue
                }
                lastWrite = kind == .write ? path : nil
                continuation.yield(WatchEvent(type: kind, path: path, name: name, timestampMillis: now))
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        continuation.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        continuation.finish()
        context.close(promise: nil)
    }
}
