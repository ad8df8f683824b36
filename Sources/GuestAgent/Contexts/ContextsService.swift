import AgentProtocol
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Code contexts: joins each `/v1/contexts` stream to the template's contexts service
/// (Jupyter kernels driven by a small Python program), starting that service as the
/// sandbox's default user on the first request and again if it has ended.
actor ContextsService {
    let launcher: ProcessLauncher
    let table: ProcessTable
    let identity: SandboxIdentity
    let group: any EventLoopGroup
    let logger: Logger
    /// The service's pid while it runs (as far as the agent knows).
    private var servicePID: Int32?
    private var starting: Task<Void, any Error>?

    /// How long the service may take to import its libraries and listen (emulated guests are slow).
    static let startTimeout: Duration = .seconds(120)

    init(launcher: ProcessLauncher, table: ProcessTable, identity: SandboxIdentity, group: any EventLoopGroup, logger: Logger) {
        self.launcher = launcher
        self.table = table
        self.identity = identity
        self.group = group
        self.logger = logger
    }

    /// Passes the stream's request body to the service and its answer back.
    nonisolated func run(_ exchange: inout Exchange) async throws {
        let connection = try await connection()
        try await exchange.writeHead(status: 200, contentType: AgentAPI.eventStreamContentType)
        try await Tunnel.join(connection, to: &exchange)
    }

    private func connection() async throws -> Tunnel.Connection {
        if let connection = try? await Self.connect(group: group) { return connection }
        if let starting {
            try await starting.value
        } else {
            let task = Task { try await self.start() }
            starting = task
            defer { starting = nil }
            try await task.value
        }
        do {
            return try await Self.connect(group: group)
        } catch {
            throw AgentFailure(status: 503, code: AgentErrorCode.failed, message: "the contexts service does not answer: \(error)")
        }
    }

    private func start() async throws {
        guard access(ContextsAPI.serviceExecutable, X_OK) == 0 else {
            throw AgentFailure(
                status: 400, code: AgentErrorCode.invalidArgument,
                message: "this sandbox's template has no code contexts (they need python3-ipykernel; the playground template has them)")
        }
        if let pid = servicePID, (try? await table.output(pid: pid))?.info.running == true {
            // Running but not answering: it may still be starting; else replace it.
            if await waitUntilListening(pid: pid, for: .seconds(5)) { return }
            try? await table.signal(pid: pid, signal: SIGKILL)
        }
        let user = try UserDatabase.lookup(await identity.snapshot().defaultUser)
        mkdir(ContextsAPI.socketDirectory, 0o700)
        chown(ContextsAPI.socketDirectory, user.uid, user.gid)
        chmod(ContextsAPI.socketDirectory, 0o700)
        let pid = try await launcher.start(
            ProcessStartRequest(
                argv: [ContextsAPI.serviceExecutable, ContextsAPI.socketPath], user: user.name, tag: ContextsAPI.serviceTag))
        servicePID = pid
        logger.info("contexts service started", metadata: ["pid": "\(pid)"])
        guard await waitUntilListening(pid: pid, for: Self.startTimeout) else {
            let output = try? await table.output(pid: pid)
            let stderr = output.flatMap { try? AgentCoding.unbase64($0.stderr) }.map { String(decoding: $0.suffix(2000), as: UTF8.self) } ?? ""
            try? await table.signal(pid: pid, signal: SIGKILL)
            throw AgentFailure(status: 503, code: AgentErrorCode.failed, message: "the contexts service did not start: \(stderr)")
        }
    }

    /// Polls the socket until it accepts a connection, the process ends or time runs out.
    private func waitUntilListening(pid: Int32, for limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let connection = try? await Self.connect(group: group) {
                try? await connection.channel.close()
                return true
            }
            if (try? await table.output(pid: pid))?.info.running != true { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    private static func connect(group: any EventLoopGroup) async throws -> Tunnel.Connection {
        try await ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connect(unixDomainSocketPath: ContextsAPI.socketPath) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Tunnel.Connection(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
    }
}
