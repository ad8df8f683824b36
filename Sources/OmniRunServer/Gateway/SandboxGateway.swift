import AgentProtocol
import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OmniRunControl
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
actor SandboxGateway: SandboxHostGateway {
    /// Accept requests kept waiting per sandbox while it has room for more connections.
    static let idleAccepts = 3

    private let limits: ConnectionLimits
    private let logger: Logger
    private var responder: RouterResponder<AppRequestContext>?
    private var acceptors: [SandboxID: Task<Void, Never>] = [:]

    init(limits: ConnectionLimits = ConnectionLimits(), logger: Logger) {
        self.limits = limits
        self.logger = logger
    }

    func setResponder(_ responder: RouterResponder<AppRequestContext>) {
        self.responder = responder
    }

    /// Starts serving a sandbox's gateway; `onRequest` runs for each request (activity).
    func start(_ sandbox: Sandbox, owner: AccountRecord, onRequest: @escaping @Sendable () async -> Void) {
        guard acceptors[sandbox.id] == nil, let responder else { return }
        let logger = self.logger
        let serve = HTTPOverGateway(
            sandboxID: sandbox.id.rawValue, owner: owner, responder: responder, limits: limits, onRequest: onRequest, logger: logger)
        let slots = GatewaySlots(limit: limits.gatewayConnections, spare: Self.idleAccepts)
        let stall = limits.gatewayIdleTimeout
        acceptors[sandbox.id] = Task {
            await Self.accept(sandbox: sandbox, slots: slots, stallTimeout: stall, serve: serve, logger: logger)
        }
    }

    func stop(_ id: SandboxID) {
        acceptors.removeValue(forKey: id)?.cancel()
    }

    func stopAll() {
        for task in acceptors.values { task.cancel() }
        acceptors.removeAll()
    }

    /// Keeps accept requests waiting in the agent while the sandbox has room (`GatewaySlots`);
    /// each accepted connection is served in its own task and its slot is free again once it
    /// ends. A guest that opens more connections than that finds them waiting in the guest.
    static func accept(
        sandbox: Sandbox, slots initial: GatewaySlots, stallTimeout: Duration, serve: HTTPOverGateway, logger: Logger
    ) async {
        let slots = NIOLockedValueBox(initial)
        let sandboxID = serve.sandboxID
        let (wanted, more) = AsyncStream<Void>.makeStream()
        /// Sends as many accept requests as there is room for.
        @Sendable func refill() {
            let count = slots.withLockedValue { $0.toOpen() }
            for _ in 0..<count { more.yield() }
        }
        let lastFullWarning = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
        refill()
        await withDiscardingTaskGroup { group in
            for await _ in wanted {
                if Task.isCancelled { break }
                group.addTask {
                    let accepted = NIOLockedValueBox(false)
                    do {
                        try await sandbox.acceptGatewayConnection(
                            stallTimeout: stallTimeout,
                            onAccepted: {
                                accepted.withLockedValue { $0 = true }
                                let full = slots.withLockedValue {
                                    $0.accepted()
                                    return $0.isFull
                                }
                                if full { Self.noteFull(sandboxID, limit: initial.limit, last: lastFullWarning, logger: logger) }
                                refill()
                            }, serve: serve.run)
                    } catch {
                        if !accepted.withLockedValue({ $0 }), !Task.isCancelled {
                            logger.debug("gateway accept failed", metadata: ["sandbox": "\(sandboxID)", "error": "\(error)"])
                        }
                    }
                    if accepted.withLockedValue({ $0 }) {
                        slots.withLockedValue { $0.ended() }
                    } else {
                        // The agent's connection is down (or refused): try again a little later.
                        if !Task.isCancelled { try? await Task.sleep(for: .seconds(2)) }
                        slots.withLockedValue { $0.failed() }
                    }
                    if !Task.isCancelled { refill() }
                }
            }
            more.finish()
        }
    }

    /// Logs (at most once a minute per sandbox) that a sandbox uses every gateway connection.
    private static func noteFull(
        _ sandboxID: String, limit: Int, last: NIOLockedValueBox<ContinuousClock.Instant?>, logger: Logger
    ) {
        let now = ContinuousClock.now
        let due = last.withLockedValue { seen -> Bool in
            if let seen, now - seen < .seconds(60) { return false }
            seen = now
            return true
        }
        if due {
            logger.info(
                "a sandbox uses all its host gateway connections; more wait in the guest",
                metadata: ["sandbox": "\(sandboxID)", "limit": "\(limit)"])
        }
    }
}
