import ArgumentParser
import Foundation
import Hummingbird
import Logging
import OmniRunControl
import OmniRunServer
import OmniRunStore
import SandboxRuntime
import ServiceLifecycle
import TemplateBuilder
#if canImport(Glibc)
import Glibc
#endif

extension OmniRun {
    /// Runs the control plane: the REST API of the public SDK, over this node's sandboxes.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the OmniRun server (REST API + sandboxes on this machine).")

        @OptionGroup var runtime: RuntimeOptions

        @Option(help: "Address to listen on (default: $OMNIRUN_HOST or 127.0.0.1).")
        var host: String?

        @Option(help: "Port to listen on (default: $OMNIRUN_PORT or 8080).")
        var port: Int?

        @Option(help: "Store: sqlite:///path (default: <data-dir>/omnirun.db) or postgres://user:pass@host/db ($OMNIRUN_DATABASE).")
        var database: String?

        @Option(help: "URL clients use to reach this server, for signed URLs ($OMNIRUN_PUBLIC_URL).")
        var publicURL: String?

        @Option(help: "Seconds without activity before a sandbox is killed ($OMNIRUN_IDLE_TIMEOUT, default 900).")
        var idleTimeout: Int64?

        @Option(
            help: "Restored machines kept ready per template: N (0 disables) or auto[:min=N,max=N,memory=MiB] ($OMNIRUN_WARM_POOL, default auto).")
        var warmPool: String?

        @Option(help: "This node's name in a cluster sharing one PostgreSQL database ($OMNIRUN_NODE_ID, default node-1).")
        var nodeId: String?

        @Option(help: "The region of this node's sandboxes ($OMNIRUN_REGION, default local).")
        var region: String?

        @Option(help: "How other nodes reach this one, http(s)://host:port ($OMNIRUN_ADVERTISE_URL).")
        var advertiseUrl: String?

        @Option(help: "Templates whose snapshots are built before the server starts (`all`: every built template).")
        var prepare: [String] = ["playground"]

        func run() async throws {
            RuntimeFactory.bootstrapLogging(runtime.logLevel == "warning" ? "info" : runtime.logLevel)
            let env = Foundation.ProcessInfo.processInfo.environment
            let dataDirectory = runtime.dataDir ?? SandboxRuntime.Configuration.defaultDataDirectory(environment: env)
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            let configuration = try ServerConfiguration.load(
                environment: env, dataDirectory: dataDirectory,
                arguments: .init(
                    host: host, port: port, databaseURL: database, publicURL: publicURL, idleTimeoutSeconds: idleTimeout, nodeID: nodeId,
                    region: region, advertiseURL: advertiseUrl))

            var logger = Logger(label: "omnirun.server")
            logger.logLevel = Logger.Level(rawValue: runtime.logLevel == "warning" ? "info" : runtime.logLevel) ?? .info
            let pool = try WarmPoolPolicy(parsing: warmPool ?? env["OMNIRUN_WARM_POOL"] ?? "auto")
            let sandboxes = try RuntimeFactory.makeRuntime(self.runtime, warmPool: pool)
            for template in prepare where template != "all" {
                say("[omnirun] preparing the \(template) snapshot (first time: boots the template once)…")
                // `<template>+net`: its snapshot with a network card (sandboxes with internet access).
                if template.hasSuffix("+net") {
                    try await sandboxes.prepareNetworkSnapshot(template: String(template.dropLast(4)))
                } else {
                    try await sandboxes.prepare(template: template)
                }
            }
            if prepare.contains("all") {
                // Every built template; one that fails is reported and left for its first create.
                for template in sandboxes.catalog.templates() where !prepare.contains(template) {
                    say("[omnirun] preparing the \(template) snapshot (first time: boots the template once)…")
                    do {
                        try await sandboxes.prepare(template: template)
                    } catch {
                        say("[omnirun] the \(template) snapshot failed: \(error)")
                    }
                }
            }
            let database = try await Store.open(url: configuration.resolvedDatabaseURL, logger: logger)
            let baseURL = configuration.baseURL
            // For test harnesses: when the process that started us goes away, take every
            // sandbox down with us instead of leaving VMs behind.
            let extra: [any Service] = env["OMNIRUN_EXIT_WITH_PARENT"] == "1" ? [ParentWatchService(runtime: sandboxes)] : []
            let (app, bootstrap) = try await OmniRunApp.build(
                configuration: configuration, runtime: sandboxes, database: database, logger: logger, services: extra,
                onRunning: {
                    say("[omnirun] listening on \(baseURL)")
                })
            if let key = bootstrap.ownerKey {
                say("[omnirun] owner account \(bootstrap.ownerEmail); API key (shown once, also in \(dataDirectory)/owner.key):")
                say(key)
            } else {
                say("[omnirun] owner API key: \(dataDirectory)/owner.key")
            }
            say("[omnirun] try: curl -H \"X-API-Key: $(cat \(dataDirectory)/owner.key)\" \(configuration.baseURL)/sandboxes")
            // The store closes and pooled and build machines go when the group stops (sandboxes
            // outlive the server, on purpose).
            do {
                try await app.runService()
            } catch is CancellationError {
                // A signal ended the service group: a normal shutdown.
            }
        }
    }

    /// Creates API keys.
    struct Key: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage API keys.", subcommands: [Create.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create an API key (and the account, if new).")

            @OptionGroup var runtime: RuntimeOptions

            @Option(help: "Account email.")
            var email: String

            @Option(help: "A name for the key.")
            var name: String = "cli"

            @Option(help: "Store URL (as for serve).")
            var database: String?

            func run() async throws {
                let env = Foundation.ProcessInfo.processInfo.environment
                let dataDirectory = runtime.dataDir ?? SandboxRuntime.Configuration.defaultDataDirectory(environment: env)
                try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
                var configuration = ServerConfiguration(dataDirectory: dataDirectory)
                configuration.databaseURL = database ?? env["OMNIRUN_DATABASE"]
                let database = try await Store.open(url: configuration.resolvedDatabaseURL, logger: Logger(label: "omnirun.key"))
                let key = try await OmniRunApp.createKey(email: email, name: name, database: database, configuration: configuration)
                await database.close()
                say(key)
            }
        }
    }
}

/// Writes a line to standard output at once (no buffering, so it shows up in logs).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Ends the server, and every sandbox with it, when the process that started it goes away
/// (`OMNIRUN_EXIT_WITH_PARENT=1`, for test harnesses).
struct ParentWatchService: Service {
    let runtime: SandboxRuntime

    func run() async throws {
        let parent = getppid()
        try await cancelWhenGracefulShutdown {
            while getppid() == parent { try await Task.sleep(for: .milliseconds(500)) }
            await runtime.destroyAll()
            await runtime.network.removeHostTable()
            Glibc.exit(0)
        }
    }
}
