import Crypto
import Foundation
import Hummingbird
import HummingbirdCore
import LLMUpstreams
import Logging
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
        onRunning: @escaping @Sendable () async -> Void = {}
    ) async throws -> (some ApplicationProtocol, Bootstrap) {
        let accounts = AccountRepository(database: database)
        let bootstrap = try await ensureOwner(accounts: accounts, configuration: configuration, logger: logger)
        let settings = SettingsRepository(database: database)
        let secret = try await settings.valueOrInsert("url-signing-key", Data(randomBytes(32)).base64EncodedString())
        let signer = URLSigner(key: SymmetricKey(data: Data(base64Encoded: secret) ?? Data(randomBytes(32))))

        // Vault: the master key file, made on first start.
        let (masterKey, keyWarning) = try MasterKeyFile.loadOrCreate(path: configuration.resolvedMasterKeyPath)
        if let keyWarning { logger.warning("\(keyWarning)") }
        let vault = VaultService(repository: VaultRepository(database: database), cipher: VaultCipher(masterKey: masterKey))
        // Sign-in by email.
        let codeKey = try await settings.valueOrInsert("signin-code-key", Data(randomBytes(32)).base64EncodedString())
        let mailer = Mailer(
            smtp: configuration.smtp, sender: configuration.mailSender, outbox: configuration.dataDirectory + "/outbox",
            logger: logger)
        let signIn = SignInService(
            logins: LoginRepository(database: database), accounts: accounts, vault: vault, mailer: mailer,
            settings: configuration.signIn, configuration: configuration,
            secret: Data(base64Encoded: codeKey).map { Array($0) } ?? randomBytes(32), logger: logger)
        // The LLM proxy.
        let upstreams = UpstreamClient(
            defaultTimeoutSeconds: configuration.llm.timeoutSeconds, environment: configuration.llmKeys,
            logger: logger)
        let ledger = SpendLedger(repository: SpendRepository(database: database), defaultCapCents: configuration.llm.spendCapCents)
        let proxy = LLMProxy(configuration: configuration.llm, client: upstreams, ledger: ledger, logger: logger)
        logger.info(
            "llm proxy", metadata: ["upstreams": "\(configuration.llm.upstreams.map(\.name))", "mail": "\(mailer.delivers ? "smtp" : "outbox")"])

        let gateway = SandboxGateway(limits: configuration.limits, logger: logger)
        let serverMetrics = ServerMetrics()
        let samples = MetricsRepository(database: database)
        let templates = try await makeTemplateService(
            runtime: runtime, database: database, configuration: configuration, logger: logger)
        // What happens to sandboxes reaches webhooks, e2ee, exposures and terminals through it.
        let lifecycle = SandboxLifecycle()
        let service = SandboxService(
            runtime: runtime,
            repository: SandboxRepository(database: database, envSealer: SandboxEnvSealer(masterKey: masterKey)), accounts: accounts,
            gateway: gateway, network: SandboxNetworkRepository(database: database),
            configuration: configuration, metrics: serverMetrics, samples: samples, lifecycle: lifecycle,
            templateAccess: { name, account in try await templates.checkAccess(name, account: account) }, logger: logger)
        let policy = WebhookAddressPolicy(
            allowLoopback: configuration.webhookAllowLoopback,
            allowedPrivate: try WebhookAddressPolicy.ranges(configuration.webhookAllowPrivate))
        let webhookRepository = WebhookRepository(database: database)
        let sealer = WebhookSecretSealer(masterKey: masterKey)
        let webhooks = WebhookService(repository: webhookRepository, policy: policy, sealer: sealer, logger: logger)
        let dispatcher = WebhookDispatcher(
            repository: webhookRepository, policy: policy, sealer: sealer, retryBase: configuration.webhookRetryBase, logger: logger)
        await webhooks.setOnQueued { dispatcher.poke() }
        webhooks.follow(lifecycle)
        await runtime.onUnexpectedExit { id, exit in await service.machineStopped(id, exit: exit) }
        // End-to-end encrypted transport: channel keys sealed under the master key.
        let e2ee = E2EESessions(repository: E2EEKeyRepository(database: database), masterKey: masterKey, logger: logger)
        lifecycle.onEnded { id in await e2ee.remove(id.rawValue) }
        // Exposures and the preview gateway (bound now, so that URLs name its real port).
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
        let boundPort = listener?.channel.localAddress?.port ?? configuration.preview.port
        let exposureKey = try await settings.valueOrInsert("exposure-token-key", Data(randomBytes(32)).base64EncodedString())
        let exposures = ExposureService(
            repository: ExposureRepository(database: database), network: SandboxNetworkRepository(database: database),
            sandboxes: service, settings: configuration.preview, publicPort: configuration.preview.publicPort ?? boundPort,
            tokenKey: SymmetricKey(data: Data(base64Encoded: exposureKey) ?? Data(randomBytes(32))), logger: logger)
        lifecycle.onEnded { id in await exposures.sandboxStopped(id.rawValue) }

        let router = Router(context: AppRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: AuthMiddleware(accounts: accounts, signer: signer, trustedProxies: configuration.trustedProxies))
        router.add(middleware: OwnershipMiddleware(service: service))
        router.add(middleware: E2EEMiddleware(sessions: e2ee, maxJSONBody: configuration.maxJSONBody))
        router.add(middleware: E2EEAccountMiddleware(sessions: e2ee, service: service))
        StatusController(service: service, configuration: configuration).register(on: router)
        HealthController(database: database, runtime: runtime).register(on: router)
        SandboxController(service: service, vault: vault, e2ee: e2ee, exposures: exposures, configuration: configuration).register(on: router)
        ExposureController(service: exposures, settings: configuration.preview).register(on: router)
        CommandController(service: service, configuration: configuration).register(on: router)
        ContextController(service: service, configuration: configuration).register(on: router)
        FileController(service: service, signer: signer, configuration: configuration).register(on: router)
        let terminals = PTYSessions()
        lifecycle.onEnded { id in await terminals.removeAll(id) }
        PTYController(service: service, sessions: terminals, configuration: configuration).register(on: router)
        DesktopController(service: service, configuration: configuration).register(on: router)
        AuthController(signIn: signIn, accounts: accounts, vault: vault, spend: ledger, configuration: configuration)
            .register(on: router)
        VaultController(vault: vault).register(on: router)
        WebhookController(service: webhooks).register(on: router)
        MetricsController(service: service, samples: samples, spend: SpendRepository(database: database), terminals: terminals)
            .register(on: router)
        LLMController(proxy: proxy).register(on: router)
        let buildQuota = BuildQuota(
            maxBuilds: configuration.quotas.buildsPerAccount, maxBytes: configuration.quotas.buildContextBytesPerAccount)
        TemplateController(service: templates, configuration: configuration, quota: buildQuota).register(on: router)
        // Sandboxes reach the LLM proxy through their host gateway, answered by this router.
        await gateway.setResponder(router.buildResponder())
        await service.recover()
        try await e2ee.load(running: Set(try await SandboxRepository(database: database).live().map(\.id)))

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
        app.addServices(
            ReaperService(service: service, interval: configuration.reaperInterval),
            OutboundService(upstreams: upstreams, gateway: gateway), WebhookDispatcherService(dispatcher: dispatcher))
        if let listener {
            app.addServices(PreviewGateway.start(listener: listener, exposures: exposures, limits: configuration.limits, logger: logger))
        }
        if let interval = configuration.metricsInterval {
            app.addServices(
                MetricsSamplerService(
                    sampler: MetricsSampler(runtime: runtime, repository: samples, interval: interval, logger: logger)))
        }
        return (app, bootstrap)
    }

    /// Templates: the built-in catalogue and users' templates. Custom templates live under
    /// `<data>/templates` (manifests, flattened images, build logs, uploads); build layers in
    /// `<cache>/template-layers`, shared by the servers of this machine (keys are per account).
    static func makeTemplateService(
        runtime: SandboxRuntime, database: any SQLDatabase, configuration: ServerConfiguration, logger: Logger
    ) async throws -> TemplateService {
        let data = runtime.configuration.dataDirectory + "/templates"
        var builderConfiguration = TemplateBuilder.Configuration(
            layerDirectory: runtime.catalog.cacheDirectory + "/template-layers", templateDirectory: data)
        builderConfiguration.egress = configuration.buildEgress
        builderConfiguration.trustedCertificates = configuration.buildCertificates
        let builder = TemplateBuilder(runtime: runtime, configuration: builderConfiguration, logger: logger)
        if !runtime.catalog.extraManifestDirectories.contains(builder.configuration.manifestDirectory) {
            logger.warning(
                "the image catalog does not read custom template manifests; custom templates cannot be used",
                metadata: ["directory": "\(builder.configuration.manifestDirectory)"])
        }
        let repository = TemplateRepository(database: database)
        try await repository.failInterrupted(at: nowMillis())
        let builds = TemplateBuilds(
            repository: repository, builder: builder, runtime: runtime, builtIns: configuration.builtInTemplates,
            directory: data, logger: logger)
        return TemplateService(
            runtime: runtime, builtIns: configuration.builtInTemplates, repository: repository, builds: builds,
            uploadDirectory: data + "/uploads", logger: logger)
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

    func run() async throws {
        try? await gracefulShutdown()
        await gateway.stopAll()
        await upstreams.shutdown()
    }
}

/// Ends sandboxes whose timeout passed or that sat idle too long.
struct ReaperService: Service {
    let service: SandboxService
    let interval: Duration

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await service.reap()
                try await Task.sleep(for: interval)
            }
        }
    }
}
