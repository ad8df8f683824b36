import AgentClient
import AgentProtocol
import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The host's end of every sandbox's host gateway. Programs in a sandbox connect to
/// `http://127.0.0.1:18080` in the guest; the agent hands each connection over its
/// channel, and here it is served as HTTP/1.1 by the API's own router, as the
/// sandbox's owner. Only the LLM proxy (`/llm/v1/*`) answers there.
actor SandboxGateway {
    /// Accept requests kept waiting per sandbox (each taken one is replaced at once).
    static let idleAccepts = 3

    private let logger: Logger
    private var responder: RouterResponder<AppRequestContext>?
    private var acceptors: [SandboxID: Task<Void, Never>] = [:]

    init(logger: Logger) {
        self.logger = logger
    }

    func setResponder(_ responder: RouterResponder<AppRequestContext>) {
        self.responder = responder
    }

    /// The variables that point a sandbox's programs at the gateway. A sandbox whose own
    /// variables bring an `OPENAI_API_KEY` (their own key) keeps its OpenAI settings.
    static func environment(userProvided: [String: String]) -> [String: String] {
        let base = "http://\(AgentAPI.HostGateway.host):\(AgentAPI.HostGateway.port)/llm/v1"
        var env = ["OMNIRUN_LLM_BASE_URL": base, "OMNIRUN_LLM_API_KEY": "omnirun-sandbox"]
        if userProvided["OPENAI_API_KEY"] == nil, userProvided["OPENAI_BASE_URL"] == nil {
            env["OPENAI_BASE_URL"] = base
            env["OPENAI_API_KEY"] = "omnirun-sandbox"
        }
        return env
    }

    /// Starts serving a sandbox's gateway; `onRequest` runs for each request (activity).
    func start(_ sandbox: Sandbox, owner: AccountRecord, onRequest: @escaping @Sendable () async -> Void) {
        guard acceptors[sandbox.id] == nil, let responder else { return }
        let logger = self.logger
        acceptors[sandbox.id] = Task {
            await Self.accept(
                agent: sandbox.agent, sandboxID: sandbox.id.rawValue, owner: owner, responder: responder,
                onRequest: onRequest, logger: logger)
        }
    }

    func stop(_ id: SandboxID) {
        acceptors.removeValue(forKey: id)?.cancel()
    }

    func stopAll() {
        for task in acceptors.values { task.cancel() }
        acceptors.removeAll()
    }

    /// Keeps `idleAccepts` requests waiting; each accepted connection is served in its
    /// own task while a new request takes its place.
    static func accept(
        agent: GuestAgentClient, sandboxID: String, owner: AccountRecord, responder: RouterResponder<AppRequestContext>,
        onRequest: @escaping @Sendable () async -> Void, logger: Logger
    ) async {
        let (wanted, more) = AsyncStream<Void>.makeStream()
        for _ in 0..<idleAccepts { more.yield() }
        let serve = HTTPOverGateway(
            sandboxID: sandboxID, owner: owner, responder: responder, onRequest: onRequest, logger: logger)
        await withDiscardingTaskGroup { group in
            for await _ in wanted {
                if Task.isCancelled { break }
                group.addTask {
                    let accepted = NIOLockedValueBox(false)
                    do {
                        try await agent.acceptGatewayConnection(
                            onAccepted: {
                                accepted.withLockedValue { $0 = true }
                                more.yield()
                            }, serve: serve.run)
                    } catch {
                        if !accepted.withLockedValue({ $0 }), !Task.isCancelled {
                            logger.debug("gateway accept failed", metadata: ["sandbox": "\(sandboxID)", "error": "\(error)"])
                        }
                    }
                    if !accepted.withLockedValue({ $0 }), !Task.isCancelled {
                        // The agent's connection is down (or refused): try again a little later.
                        try? await Task.sleep(for: .seconds(2))
                        more.yield()
                    }
                }
            }
            more.finish()
        }
    }
}

/// Serves one handed-over connection as HTTP/1.1: a socket pair joins the gateway's
/// byte stream to Hummingbird's HTTP/1 channel, whose requests the API router answers
/// with the sandbox's owner already signed in.
struct HTTPOverGateway: Sendable {
    let sandboxID: String
    let owner: AccountRecord
    let responder: RouterResponder<AppRequestContext>
    let onRequest: @Sendable () async -> Void
    let logger: Logger

    func run(_ connection: GatewayConnection) async throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw OmniRunError(.internalError, "socketpair failed: \(errno)")
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let sandboxID = self.sandboxID
        let owner = self.owner
        let responder = self.responder
        let onRequest = self.onRequest
        let logger = self.logger
        let http = HTTP1Channel(responder: { request, writer, channel in
            await onRequest()
            var context = AppRequestContext(source: .init(channel: channel, logger: logger))
            context.account = owner
            context.gatewaySandboxID = sandboxID
            context.logger[metadataKey: "sandbox"] = "\(sandboxID)"
            let response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch {
                response = APIError.response(APIError.normalize(error))
            }
            try await writer.write(response: response.head, body: response.body)
        })
        let server: HTTP1Channel.Value
        let bridge: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            server = try await ClientBootstrap(group: group).withConnectedSocket(fds[0]) { channel in
                http.setup(channel: channel, logger: logger)
            }
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        do {
            bridge = try await ClientBootstrap(group: group)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .withConnectedSocket(fds[1]) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                    }
                }
        } catch {
            close(fds[1])
            try? await server.channel.close()
            throw error
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await http.handle(value: server, logger: logger) }
            tasks.addTask {
                try await bridge.executeThenClose { inbound, outbound in
                    try await withThrowingTaskGroup(of: Void.self) { pipes in
                        pipes.addTask {
                            for try await chunk in inbound { try await connection.write(chunk) }
                            await connection.finish()
                        }
                        for await chunk in connection.inbound { try await outbound.write(chunk) }
                        outbound.finish()
                        try await pipes.next()
                    }
                }
            }
            try await tasks.waitForAll()
        }
    }
}
