import AgentProtocol
import CAgentSupport
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Serves the wire contract over the virtio-serial port. The host may go away and
/// come back (a server restart, a snapshot restore): each time a fresh HTTP/2
/// connection starts on the same port. While no host is attached the port reads
/// end-of-file at once, so the loop backs off briefly instead of spinning.
struct AgentServer: Sendable {
    let devicePath: String
    let router: Router
    let group: any EventLoopGroup
    let logger: Logger

    static var http2Settings: HTTP2Settings {
        [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 4096),
            HTTP2Setting(parameter: .initialWindowSize, value: 4 << 20),
            HTTP2Setting(parameter: .maxFrameSize, value: 1 << 18),
        ]
    }

    static var http2Configuration: NIOHTTP2Handler.Configuration {
        var configuration = NIOHTTP2Handler.Configuration()
        configuration.connection.initialSettings = http2Settings
        configuration.stream.targetWindowSize = 4 << 20
        // HTTP/2's connection window defaults to 64 KiB: one 64 KiB piece in flight
        // per round trip for all streams together. 1 MiB doubled file throughput
        // (measured: 4 and 16 MiB were slower again, the guest then queues more
        // than it can take in under emulation).
        configuration.connection.targetWindowSize = 1 << 20
        return configuration
    }

    func run() async {
        let waiter = NIOThreadPool(numberOfThreads: 1)
        waiter.start()
        while !Task.isCancelled {
            let fd = open(devicePath, O_RDWR | O_CLOEXEC | O_NONBLOCK)
            if fd < 0 {
                logger.warning("cannot open the agent port", metadata: ["device": "\(devicePath)", "errno": "\(errno)"])
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            // Park until a host attaches: the port signals SIGIO when it does. This is
            // also where a template's snapshot is taken, so every restored agent wakes
            // from here the moment its host connects. The host waits for this line on
            // the console before it saves the machine: a snapshot taken while the old
            // connection was still being torn down made some restores deaf.
            if SnapshotHandshake.take() { SnapshotHandshake.announceParked() }
            let attached = (try? await waiter.runIfActive { omr_wait_for_host(fd, 1000) }) ?? 0
            if attached != 1 {
                close(fd)
                if attached < 0 {
                    logger.warning("waiting for the host failed", metadata: ["errno": "\(-attached)"])
                    try? await Task.sleep(for: .milliseconds(100))
                }
                continue
            }
            // The event loop gets a plain socket; the bridge threads deal with the port.
            var loopFD: Int32 = -1
            guard let bridge = omr_bridge_start(fd, &loopFD) else {
                close(fd)
                logger.warning("cannot bridge the agent port")
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            _ = await serve(fd: loopFD)
            let handle = BridgeHandle(pointer: bridge)
            _ = try? await waiter.runIfActive { omr_bridge_finish(handle.pointer) }
        }
    }

    private struct BridgeHandle: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
    }

    /// Serves one host connection until it ends. Returns whether any stream was served.
    private func serve(fd: Int32) async -> Bool {
        let configuration = Self.http2Configuration
        let router = self.router
        var servedAny = false
        do {
            let multiplexer = try await ClientBootstrap(group: group)
                .withConnectedSocket(fd) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
                            mode: .server, configuration: configuration
                        ) { stream in
                            stream.eventLoop.makeCompletedFuture {
                                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                                return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                                    wrappingChannelSynchronously: stream)
                            }
                        }
                    }
                }
            try await withThrowingDiscardingTaskGroup { tasks in
                for try await stream in multiplexer.inbound {
                    servedAny = true
                    tasks.addTask { await router.handle(stream) }
                }
            }
        } catch {
            if servedAny { logger.info("host connection ended", metadata: ["error": "\(error)"]) }
        }
        return servedAny
    }

    /// Finds the character device of the virtio-serial port with the given name.
    static func findPort(named name: String) -> String? {
        for entry in (try? FileService.directoryNames("/sys/class/virtio-ports")) ?? [] {
            let nameFile = "/sys/class/virtio-ports/\(entry)/name"
            if let text = readSmallFile(nameFile), text.trimmingNewlines() == name {
                return "/dev/\(entry)"
            }
        }
        return nil
    }
}

extension StringProtocol {
    func trimmingNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == "\r" || last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// `prepareSnapshot` sets it; the server loop announces on the console that it is
/// parked (no connection, bridge threads gone) so the host can save the machine.
enum SnapshotHandshake {
    private static let requested = Atomic<Bool>(false)
    static let marker = AgentAPI.snapshotParkedMarker

    static func request() { requested.store(true, ordering: .releasing) }

    static func take() -> Bool { requested.exchange(false, ordering: .acquiringAndReleasing) }

    static func announceParked() {
        let fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let line = Array((marker + "\n").utf8)
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}
