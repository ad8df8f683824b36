import AgentClient
import AgentProtocol
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import OmniRunError
import Testing

@testable import GuestAgent

/// The guest agent's router behind its own HTTP/2 settings on a Unix socket of this host,
/// without a VM, driven by the host's real client: what the host asks reaches the right
/// service (files on a temporary folder), and unknown routes, bad bodies and paths are
/// refused with the agent's status and code instead of failing the connection.
@Suite("Guest agent: router", .serialized)
struct RouterTests {
    /// An agent (health, identity, files; processes are not started here: the agent's
    /// child reaper would take the test process's children) served on `path`.
    static func withAgent(_ body: (GuestAgentClient, String) async throws -> Void) async throws {
        let logger = Logger(label: "omnirun.test.agent")
        let group = MultiThreadedEventLoopGroup.singleton
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let tag = "\(getpid())-\(UUID().uuidString.prefix(8))"
        let root = FileManager.default.temporaryDirectory.path + "/omnirun-router-\(tag)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let socket = root + "/agent.sock"
        let table = ProcessTable(logger: logger)
        let identity = SandboxIdentity(ownsMachine: false, logger: logger)
        let launcher = ProcessLauncher(table: table, identity: identity, reaper: Reaper(), group: group, logger: logger)
        let router = Router(
            table: table, launcher: launcher, files: FileService(pool: pool, identity: identity), identity: identity,
            gateway: HostGateway(logger: logger),
            desktop: DesktopService(pool: pool, launcher: launcher, table: table, logger: logger),
            contexts: ContextsService(launcher: launcher, table: table, identity: identity, group: group, logger: logger),
            group: group, logger: logger, bootMillis: Clock.monotonicMillis(), onShutdown: {})
        let configuration = AgentServer.http2Configuration
        let server = try await ServerBootstrap(group: group)
            .bind(unixDomainSocketPath: socket, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .server, configuration: configuration) {
                        stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                            return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                                wrappingChannelSynchronously: stream)
                        }
                    }
                }
            }
        let serving = Task {
            try? await withThrowingDiscardingTaskGroup { connections in
                try await server.executeThenClose { inbound in
                    for try await multiplexer in inbound {
                        connections.addTask {
                            try? await withThrowingDiscardingTaskGroup { streams in
                                for try await stream in multiplexer.inbound {
                                    streams.addTask { await router.handle(stream) }
                                }
                            }
                        }
                    }
                }
            }
        }
        var failure: (any Error)?
        do {
            let client = try await GuestAgentClient.connect(socketPath: socket, name: "router test", timeout: .seconds(10))
            do { try await body(client, root) } catch { failure = error }
            await client.close()
        } catch {
            failure = error
        }
        serving.cancel()
        try? await server.channel.close()
        _ = await serving.value
        try? FileManager.default.removeItem(atPath: root)
        try await pool.shutdownGracefully()
        if let failure { throw failure }
    }

    /// The error the host's client makes of the agent's refusal (nil: no refusal).
    static func refusal(_ body: () async throws -> Void) async -> OmniRunError.Code? {
        do {
            try await body()
            return nil
        } catch let error as OmniRunError {
            return error.code
        } catch {
            return .internalError
        }
    }

    @Test func healthAndFilesReachTheirServices() async throws {
        try await Self.withAgent { client, root in
            let health = try await client.health()
            #expect(health.apiVersion == AgentAPI.version)
            let written = try await client.writeFile(path: root + "/dir/notes.txt", user: "root", bytes: Array("hello router".utf8))
            #expect(written.size == 12 && written.type == .file)
            #expect(try await client.readFile(path: root + "/dir/notes.txt", user: "root") == Array("hello router".utf8))
            #expect(try await client.stat(path: root + "/dir", user: "root").type == .directory)
            #expect(try await client.list(path: root, user: "root").map(\.name) == ["agent.sock", "dir"])
            _ = try await client.makeDirectory(path: root + "/made/deep", user: "root")
            try await client.remove(path: root + "/made", user: "root")
            #expect(try await client.list(path: root, user: "root").map(\.name) == ["agent.sock", "dir"])
        }
    }

    @Test func badCallsAreRefusedAndTheConnectionStaysUsable() async throws {
        try await Self.withAgent { client, root in
            // A missing file is not found; a NUL in a path is a bad argument.
            let missing = await Self.refusal { _ = try await client.stat(path: root + "/nothing", user: "root") }
            #expect(missing == .notFound, "\(String(describing: missing))")
            let nul = await Self.refusal { _ = try await client.stat(path: root + "/a\u{0}b", user: "root") }
            #expect(nul == .invalidArgument, "\(String(describing: nul))")
            // An unknown user is refused, not run as root.
            let stranger = await Self.refusal {
                _ = try await client.writeFile(path: root + "/x", user: "no-such-user-here", bytes: [1])
            }
            #expect(stranger != nil, "an unknown user's write was accepted")
            #expect(!FileManager.default.fileExists(atPath: root + "/x"))
            // After every refusal the same connection still answers.
            let after = try await client.health()
            #expect(after.apiVersion == AgentAPI.version)
        }
    }
}
