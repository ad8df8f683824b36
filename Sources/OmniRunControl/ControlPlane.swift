import Crypto
import Foundation
import LLMUpstreams
import Logging
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime
import ServiceLifecycle
import TemplateBuilder

/// The control plane of one node, wired: every service the HTTP edge calls, built once
/// from the configuration, the runtime and the store. What happens to sandboxes reaches
/// webhooks, e2ee keys, exposures and terminals through `lifecycle`; nothing is set after
/// construction.
package struct ControlPlane: Sendable {
    package let configuration: ServerConfiguration
    package let runtime: SandboxRuntime
    package let database: any SQLDatabase
    package let accounts: AccountRepository
    package let signer: URLSigner
    package let vault: VaultService
    package let signIn: SignInService
    package let upstreams: UpstreamClient
    package let ledger: SpendLedger
    package let lifecycle: SandboxLifecycle
    package let sandboxes: SandboxService
    package let creation: SandboxCreation
    package let templates: TemplateService
    package let buildQuota: BuildQuota
    package let webhooks: WebhookService
    package let dispatcher: WebhookDispatcher
    package let e2ee: E2EESessions
    package let exposures: ExposureService
    package let terminals: PTYSessions
    package let samples: MetricsRepository
    package let metrics: ServerMetrics
    /// Signs and checks node-to-node calls.
    package let clusterAuth: ClusterAuth
    /// The key of the web console's CSRF tokens (one per session, derived from it).
    package let consoleKey: Data
    /// The key of the E2B-compatible endpoint's per-sandbox access tokens (`E2BAccess`).
    package let e2bKey: Data
    /// Signed calls to other nodes (closed when the server stops).
    package let nodeClient: NodeClient
    /// Custom templates fetched from the node that holds them.
    package let replication: TemplateReplication
    /// Paused sandboxes handed between nodes (drains).
    package let moves: PausedMoves
    package let logger: Logger

    /// Builds the services. `hostGateway` serves sandboxes' gateways (the edge's);
    /// `previewPort` is the port preview URLs name.
    package static func make(
        configuration: ServerConfiguration, runtime: SandboxRuntime, database: any SQLDatabase,
        hostGateway: any SandboxHostGateway, previewPort: Int, logger: Logger
    ) async throws -> ControlPlane {
        var configuration = configuration
        configuration.preview.listeningPort = previewPort > 0 ? previewPort : nil
        configuration.preview.region = configuration.region == "local" ? nil : configuration.region
        let accounts = AccountRepository(database: database)
        let settings = SettingsRepository(database: database)
        // Node-to-node calls are signed with the cluster's secret, kept in the shared store.
        let clusterSecret = try await settings.valueOrInsert("cluster-secret", Data(randomBytes(32)).base64EncodedString())
        let clusterAuth = ClusterAuth(node: configuration.nodeID, secret: Data(base64Encoded: clusterSecret) ?? Data(randomBytes(32)))
        let consoleKey = Data(
            base64Encoded: try await settings.valueOrInsert("console-csrf-key", Data(randomBytes(32)).base64EncodedString()))
            ?? Data(randomBytes(32))
        let e2bKey = Data(
            base64Encoded: try await settings.valueOrInsert("e2b-access-key", Data(randomBytes(32)).base64EncodedString()))
            ?? Data(randomBytes(32))
        let secret = try await settings.valueOrInsert("url-signing-key", Data(randomBytes(32)).base64EncodedString())
        let signer = URLSigner(key: SymmetricKey(data: Data(base64Encoded: secret) ?? Data(randomBytes(32))))

        // Vault: the master key file, made on first start.
        let (masterKey, keyWarning) = try MasterKeyFile.loadOrCreate(path: configuration.resolvedMasterKeyPath)
        if let keyWarning { logger.warning("\(keyWarning)") }
        let keyCheck = ClusterAuth.masterKeyCheck(masterKey)
        if try await settings.valueOrInsert("master-key-check", keyCheck) != keyCheck {
            logger.error(
                "this node's master key is not the one the other nodes of this database use: vault values, webhook secrets and e2ee keys they stored will not open here; give every node the same OMNIRUN_MASTER_KEY_FILE",
                metadata: ["node": "\(configuration.nodeID)"])
        }
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
        // The LLM proxy's upstreams and the spend it records.
        let upstreams = UpstreamClient(
            defaultTimeoutSeconds: configuration.llm.timeoutSeconds, environment: configuration.llmKeys, logger: logger)
        let ledger = SpendLedger(repository: SpendRepository(database: database), defaultCapCents: configuration.llm.spendCapCents)
        logger.info(
            "llm proxy", metadata: ["upstreams": "\(configuration.llm.upstreams.map(\.name))", "mail": "\(mailer.delivers ? "smtp" : "outbox")"])

        let metrics = ServerMetrics()
        let samples = MetricsRepository(database: database)
        let templates = try await makeTemplateService(
            runtime: runtime, database: database, configuration: configuration, logger: logger)
        let nodeClient = NodeClient(auth: clusterAuth, logger: logger)
        let replication = TemplateReplication(
            manifestDirectory: templates.builds.builder.configuration.manifestDirectory,
            imageDirectory: templates.builds.builder.configuration.imageDirectory, catalog: runtime.catalog,
            nodes: NodeRepository(database: database), client: nodeClient, logger: logger)
        let lifecycle = SandboxLifecycle()
        let sandboxes = SandboxService(
            runtime: runtime,
            repository: SandboxRepository(database: database, envSealer: SandboxEnvSealer(masterKey: masterKey)), accounts: accounts,
            gateway: hostGateway, network: SandboxNetworkRepository(database: database),
            configuration: configuration, metrics: metrics, samples: samples, lifecycle: lifecycle,
            templateAccess: { name, account in
                // A custom template built on another node is fetched before its first sandbox here.
                if let record = try await templates.checkAccess(name, account: account) { try await replication.ensure(record) }
            },
            nodes: NodeRepository(database: database), logger: logger)
        await runtime.onUnexpectedExit { id, exit in await sandboxes.machineStopped(id, exit: exit) }
        let moves = PausedMoves(
            service: sandboxes, replication: replication, templates: TemplateRepository(database: database), client: nodeClient,
            logger: logger)

        // Webhooks: queued from the lifecycle, delivered by the dispatcher.
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

        // End-to-end encrypted transport: channel keys sealed under the master key.
        let e2ee = E2EESessions(repository: E2EEKeyRepository(database: database), masterKey: masterKey, logger: logger)
        lifecycle.onEnded { id in await e2ee.remove(id.rawValue) }
        // Exposures: their tokens are signed with a key of this installation.
        let exposureKey = try await settings.valueOrInsert("exposure-token-key", Data(randomBytes(32)).base64EncodedString())
        let exposures = ExposureService(
            repository: ExposureRepository(database: database), network: SandboxNetworkRepository(database: database),
            sandboxes: sandboxes, settings: configuration.preview, publicPort: configuration.preview.publicPort ?? previewPort,
            tokenKey: SymmetricKey(data: Data(base64Encoded: exposureKey) ?? Data(randomBytes(32))), logger: logger)
        lifecycle.onEnded { id in await exposures.sandboxStopped(id.rawValue) }
        let terminals = PTYSessions()
        lifecycle.onEnded { id in await terminals.removeAll(id) }

        return ControlPlane(
            configuration: configuration, runtime: runtime, database: database, accounts: accounts, signer: signer, vault: vault,
            signIn: signIn, upstreams: upstreams, ledger: ledger, lifecycle: lifecycle, sandboxes: sandboxes,
            creation: SandboxCreation(service: sandboxes, vault: vault, e2ee: e2ee, exposures: exposures),
            templates: templates,
            buildQuota: BuildQuota(
                maxBuilds: configuration.quotas.buildsPerAccount, maxBytes: configuration.quotas.buildContextBytesPerAccount),
            webhooks: webhooks, dispatcher: dispatcher, e2ee: e2ee, exposures: exposures, terminals: terminals, samples: samples,
            metrics: metrics, clusterAuth: clusterAuth, consoleKey: consoleKey, e2bKey: e2bKey, nodeClient: nodeClient, replication: replication,
            moves: moves, logger: logger)
    }

    /// Takes over what an earlier process of this server left: sandboxes still running
    /// (re-attached or ended), their e2ee keys.
    package func recover() async throws {
        await sandboxes.recover()
        try await e2ee.load(running: Set(try await SandboxRepository(database: database).live().map(\.id)))
    }

    /// The control plane's long-running work, in dependency order: the store and the
    /// runtime (closed and drained last), the reaper (timeouts, idle kills), webhook
    /// deliveries, metrics sampling. Run them in the server's ServiceGroup, before the
    /// listeners: a group stops its services in reverse order.
    package var services: [any Service] {
        var services: [any Service] = [
            StoreService(database: database), RuntimeService(runtime: runtime),
            ReaperService(service: sandboxes, interval: configuration.reaperInterval), WebhookDispatcherService(dispatcher: dispatcher),
            NodeLeaseService(service: sandboxes, moves: moves, configuration: configuration, logger: logger),
        ]
        if let interval = configuration.metricsInterval {
            services.append(
                MetricsSamplerService(
                    sampler: MetricsSampler(runtime: runtime, repository: samples, interval: interval, logger: logger)))
        }
        return services
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

/// Closes the store when the server stops (after every service that uses it).
struct StoreService: Service {
    let database: any SQLDatabase

    func run() async throws {
        try? await gracefulShutdown()
        await database.close()
    }
}

/// The runtime's end when the server stops: re-attaches still settling are waited for,
/// pooled and build machines go. Sandboxes themselves outlive the server on purpose (the
/// next start re-attaches them).
struct RuntimeService: Service {
    let runtime: SandboxRuntime

    func run() async throws {
        try? await gracefulShutdown()
        // A clean stop only: after a failure, the sandboxes re-attached at this start are not
        // waited for.
        if !Task.isCancelled { await runtime.settleAllReattaches() }
        await runtime.drainPool()
        await runtime.destroyBuildMachines()
    }
}
