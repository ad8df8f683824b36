import Crypto
import Foundation
import Hummingbird
import HummingbirdCore
import LLMUpstreams
import Logging
import OmniRunControl
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime
import ServiceLifecycle
import TemplateBuilder

/// Builds the control plane: store, services, routes.
public enum OmniRunApp {
    /// What a start produced that the operator should see.
    public struct Bootstrap: Sendable {
        /// The owner's API key when this start created the owner account.
        public var ownerKey: String?
        public var ownerEmail: String
        public var url: String
    }

    public static func build(
        configuration: ServerConfiguration, runtime: SandboxRuntime, database: any SQLDatabase, logger: Logger,
        services extra: [any Service] = [], onRunning: @escaping @Sendable () async -> Void = {}
    ) async throws -> (some ApplicationProtocol, Bootstrap) {
        let bootstrap = try await ensureOwner(
            accounts: AccountRepository(database: database), configuration: configuration, logger: logger)
        // The host gateway and the preview gateway are this edge's; the preview gateway is
        // bound now, so that URLs name its real port.
        let gateway = SandboxGateway(limits: configuration.limits, logger: logger)
        var listener: PreviewGateway.Listener?
        if configuration.preview.port >= 0 {
            do {
                listener = try await PreviewGateway.bind(
                    host: configuration.host, port: configuration.preview.port, limits: configuration.limits, logger: logger)
            } catch where !configuration.preview.portIsExplicit {
                logger.warning("the default preview port is taken; using a free one", metadata: ["error": "\(error)"])
                listener = try await PreviewGateway.bind(host: configuration.host, port: 0, limits: configuration.limits, logger: logger)
            }
        }
        let control = try await ControlPlane.make(
            configuration: configuration, runtime: runtime, database: database, hostGateway: gateway,
            previewPort: listener?.channel.localAddress?.port ?? configuration.preview.port, logger: logger)
        // Requests for sandboxes other nodes run, and creates placed there, go through.
        let relay = NodeRelay(nodes: control.sandboxes.nodes, auth: control.clusterAuth, logger: logger)
        let router = buildRouter(control, relay: relay)
        // Sandboxes reach the LLM proxy through their host gateway, answered by this router.
        await gateway.setResponder(router.buildResponder())
        try await control.recover()

        // The API's connection caps and timeouts (docs/security.md).
        let limits = configuration.limits
        var app = Application(
            router: router,
            server: .guardedHTTP1(
                limits: .init(
                    headerTimeout: limits.headerTimeout, idleTimeout: limits.keepAliveTimeout, maxHeaderBytes: limits.maxHeaderBytes,
                    perAddress: limits.connectionsPerAddress > 0 ? ConnectionCounter(limit: limits.connectionsPerAddress) : nil),
                additionalChannelHandlers: { [ExpectContinueHandler()] }),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "omnirun",
                availableConnectionsDelegate: MaximumAvailableConnections(limits.apiConnections, logger: logger)),
            onServerRunning: { _ in await onRunning() },
            logger: logger)
        // One ServiceGroup, in dependency order (it stops them in reverse): the control plane,
        // then what talks to the outside, then the preview listener; the API server last.
        for service in control.services { app.addServices(service) }
        app.addServices(OutboundService(upstreams: control.upstreams, gateway: gateway, relay: relay, nodeClient: control.nodeClient))
        for service in extra { app.addServices(service) }
        if let listener {
            app.addServices(
                PreviewGateway.start(listener: listener, exposures: control.exposures, limits: configuration.limits, logger: logger))
        }
        return (app, bootstrap)
    }

    /// The API's routes over the control plane: authentication, ownership and e2ee in front,
    /// then one collection per area.
    static func buildRouter(_ control: ControlPlane, relay: NodeRelay? = nil) -> Router<AppRequestContext> {
        let configuration = control.configuration
        let service = control.sandboxes
        let router = Router(context: AppRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: NodeAuthMiddleware(auth: control.clusterAuth))
        let console = ConsoleSession(key: control.consoleKey, secure: configuration.baseURL.hasPrefix("https:"))
        router.add(
            middleware: AuthMiddleware(
                accounts: control.accounts, signer: control.signer, trustedProxies: configuration.trustedProxies, console: console))
        router.add(middleware: OwnershipMiddleware(service: service, relay: relay))
        if let relay {
            router.add(middleware: PlacementMiddleware(relay: relay, configuration: configuration, catalog: control.runtime.catalog))
        }
        router.add(middleware: E2EEMiddleware(sessions: control.e2ee, maxJSONBody: configuration.maxJSONBody))
        router.add(middleware: E2EEAccountMiddleware(sessions: control.e2ee, service: service))
        let proxy = LLMProxy(configuration: configuration.llm, client: control.upstreams, ledger: control.ledger, logger: control.logger)
        router.addRoutes(StatusController(service: service, configuration: configuration).routes)
        router.addRoutes(HealthController(database: control.database, runtime: control.runtime).routes)
        router.addRoutes(SandboxController(creation: control.creation, configuration: configuration).routes)
        router.addRoutes(ExposureController(service: control.exposures, settings: configuration.preview).routes)
        router.addRoutes(CommandController(service: service, configuration: configuration).routes)
        router.addRoutes(ContextController(service: service, configuration: configuration).routes)
        router.addRoutes(FileController(service: service, signer: control.signer, configuration: configuration).routes)
        router.addRoutes(PTYController(service: service, sessions: control.terminals, configuration: configuration).routes)
        router.addRoutes(DesktopController(service: service, configuration: configuration).routes)
        router.addRoutes(
            AuthController(
                signIn: control.signIn, accounts: control.accounts, vault: control.vault, spend: control.ledger,
                configuration: configuration
            ).routes)
        router.addRoutes(
            ConsoleController(
                signIn: control.signIn, accounts: control.accounts, session: console, directory: configuration.consoleDirectory,
                xtermDirectory: configuration.consoleDirectory.map { $0 + "/vendor/xterm" }
                    .flatMap { FileManager.default.fileExists(atPath: $0 + "/xterm.js") ? $0 : nil } ?? configuration.xtermDirectory
            ).routes)
        router.addRoutes(VaultController(vault: control.vault).routes)
        router.addRoutes(WebhookController(service: control.webhooks).routes)
        router.addRoutes(
            MetricsController(
                service: service, samples: control.samples, spend: SpendRepository(database: control.database),
                terminals: control.terminals
            ).routes)
        router.addRoutes(LLMController(proxy: proxy).routes)
        router.addRoutes(TemplateController(service: control.templates, configuration: configuration, quota: control.buildQuota).routes)
        router.addRoutes(E2BRoutes.collection(control, relay: relay), atPath: RouterPath(E2BRoutes.prefix))
        router.addRoutes(
            InternalController(
                replication: control.replication, moves: control.moves, catalog: control.runtime.catalog,
                builtIns: configuration.builtInTemplates)
                .routes)
        return router
    }

    /// The first start creates the owner account and its key (shown once, kept in
    /// `<data>/owner.key` with mode 0600 so a single-box install can find it).
    static func ensureOwner(accounts: AccountRepository, configuration: ServerConfiguration, logger: Logger) async throws -> Bootstrap {
        let email = configuration.ownerEmail
        guard try await accounts.count() == 0 else {
            return Bootstrap(ownerKey: nil, ownerEmail: email, url: configuration.baseURL)
        }
        let account = AccountRecord(
            id: randomID("acc_"), email: email, role: .owner, concurrentLimit: configuration.defaultConcurrentLimit,
            createdAt: nowMillis())
        try await accounts.create(account)
        let key = APIKeys.generate()
        try await accounts.addKey(
            id: randomID("key_"), accountID: account.id, name: "owner", hash: APIKeys.hash(key), prefix: APIKeys.prefix(key),
            expiresAt: nil)
        let path = configuration.dataDirectory + "/owner.key"
        _ = FileManager.default.createFile(atPath: path, contents: Data((key + "\n").utf8), attributes: [.posixPermissions: 0o600])
        logger.info("owner account created", metadata: ["email": "\(email)", "keyFile": "\(path)"])
        return Bootstrap(ownerKey: key, ownerEmail: email, url: configuration.baseURL)
    }

    /// Creates an API key for an account (creating the account if new).
    public static func createKey(
        email: String, name: String, database: any SQLDatabase, configuration: ServerConfiguration
    ) async throws -> String {
        guard email.contains("@"), email.count <= 254 else { throw OmniRunError(.invalidArgument, "invalid email '\(email)'") }
        let accounts = AccountRepository(database: database)
        let account: AccountRecord
        if let existing = try await accounts.find(email: email) {
            account = existing
        } else {
            account = AccountRecord(
                id: randomID("acc_"), email: email, role: .user, concurrentLimit: configuration.defaultConcurrentLimit,
                createdAt: nowMillis())
            try await accounts.create(account)
        }
        let key = APIKeys.generate()
        try await accounts.addKey(
            id: randomID("key_"), accountID: account.id, name: name, hash: APIKeys.hash(key), prefix: APIKeys.prefix(key),
            expiresAt: nil)
        return key
    }
}

/// Owns what talks to the outside: on shutdown the gateways stop and the upstream
/// HTTP client closes its connections.
struct OutboundService: Service {
    let upstreams: UpstreamClient
    let gateway: SandboxGateway
    let relay: NodeRelay
    let nodeClient: NodeClient

    func run() async throws {
        try? await gracefulShutdown()
        await gateway.stopAll()
        await upstreams.shutdown()
        await relay.shutdown()
        await nodeClient.shutdown()
    }
}
