import Foundation
import Logging
import OmniRunError
import OmniRunStore
import SandboxRuntime
import TemplateBuilder

/// Custom templates: builds (one at a time on a node), their logs, ownership and deletion.
/// Names are global: a name belongs to the account that first built it; built-in names
/// belong to nobody.
package actor TemplateBuilds {
    package nonisolated let repository: TemplateRepository
    package nonisolated let builder: TemplateBuilder
    package nonisolated let runtime: SandboxRuntime
    package nonisolated let builtIns: BuiltInTemplates
    /// `<data>/templates`: build logs in `logs/`.
    package nonisolated let directory: String
    package var logDirectory: String { directory + "/logs" }
    private let logger: Logger
    private var logs: [String: BuildLog] = [:]
    private var tasks: [String: Task<Void, Never>] = [:]
    /// Builds run one after another: each boots machines and compiles things.
    private var queue: Task<Void, Never>?

    package init(
        repository: TemplateRepository, builder: TemplateBuilder, runtime: SandboxRuntime, builtIns: BuiltInTemplates,
        directory: String, logger: Logger
    ) {
        self.repository = repository
        self.builder = builder
        self.runtime = runtime
        self.builtIns = builtIns
        self.directory = directory
        self.logger = logger
    }

    /// Starts a build; answers at once with the build's record.
    package func start(
        dockerfile text: String, settings: TemplateSettings, contextPath: String?, account: AccountRecord,
        onEnd: @escaping @Sendable () async -> Void = {}
    ) async throws -> (TemplateRecord, TemplateBuildRecord) {
        try settings.validate()
        if builtIns.contains(settings.name) || ImageCatalog.aliases[settings.name] != nil {
            throw OmniRunError(.alreadyExists, "'\(settings.name)' is a built-in template's name")
        }
        let dockerfile = try Dockerfile.parse(text)
        guard let base = TemplateBuilder.baseTemplate(for: dockerfile.from), builtIns.contains(base) else {
            throw OmniRunError(
                .invalidArgument, "Dockerfile: FROM \(dockerfile.from): use a built-in template (\(builtIns.names.joined(separator: ", "))) or debian:bookworm")
        }
        guard runtime.catalog.isBuilt(base) else {
            throw OmniRunError(.invalidArgument, "Dockerfile: FROM \(dockerfile.from): the \(base) template is not built on this server")
        }
        // COPY --from names built-in templates only (another account's template is not a source).
        let builtIns = self.builtIns
        let catalog = runtime.catalog
        try TemplateBuilder.validate(dockerfile, settings: settings, hasContext: contextPath != nil) { name in
            guard builtIns.contains(name) else {
                throw OmniRunError(.invalidArgument, "\(name) is not a built-in template (\(builtIns.names.joined(separator: ", ")))")
            }
            guard catalog.isBuilt(name) else { throw OmniRunError(.invalidArgument, "the \(name) template is not built on this server") }
            return ("", "")
        }
        let baseImage = try runtime.catalog.template(named: base).image
        let now = nowMillis()
        let buildID = "bld_" + randomHex(12)
        let record = TemplateRecord(
            name: settings.name, accountID: account.id, status: "building", description: settings.description,
            cpuCount: settings.cpuCount ?? baseImage.vcpus, memoryMB: settings.memoryMB ?? baseImage.memoryMB,
            diskMB: max(settings.diskMB ?? 0, baseImage.diskMB ?? 0), latestBuild: buildID, published: false, createdAt: now,
            updatedAt: now)
        let build = TemplateBuildRecord(
            id: buildID, template: settings.name, accountID: account.id, status: "building", error: nil, createdAt: now, finishedAt: nil)
        let stored = try await repository.claim(record, build: build)
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let log = BuildLog(path: logDirectory + "/\(buildID).log")
        logs[buildID] = log
        let request = TemplateBuilder.Request(
            dockerfile: dockerfile, settings: settings, contextPath: contextPath, scope: account.id, buildID: buildID)
        let previous = queue
        let builder = self.builder
        let repository = self.repository
        let logger = self.logger
        let task = Task {
            await previous?.value
            if previous != nil { log.append("waited for the builds before it") }
            var status = "ready"
            var message: String?
            do {
                _ = try await builder.build(request, log: log)
                // Which version this node holds: other nodes fetch it by this build.
                TemplateReplication.recordBuild(settings.name, build: buildID, in: builder.configuration.manifestDirectory)
            } catch {
                status = "failed"
                message = (error as? OmniRunError)?.message ?? "\(error)"
                log.append("build failed: \(message ?? "")")
                logger.warning("template build failed", metadata: ["template": "\(settings.name)", "build": "\(buildID)", "error": "\(message ?? "")"])
            }
            if let contextPath { try? FileManager.default.removeItem(atPath: contextPath) }
            await onEnd()
            try? await repository.finish(build: buildID, template: settings.name, status: status, error: message, at: nowMillis())
            log.finish(status: status, error: message)
            self.ended(buildID)
        }
        tasks[buildID] = task
        queue = task
        logger.info("template build started", metadata: ["template": "\(settings.name)", "build": "\(buildID)", "account": "\(account.id)"])
        return (stored, build)
    }

    private func ended(_ build: String) {
        tasks[build] = nil
        // Its followers keep what they hold; later readers get the log from its file.
        logs[build] = nil
    }

    /// A build's log: live while it runs, else from its file (its last few MiB either way).
    package func log(_ build: TemplateBuildRecord) -> BuildLog {
        if let live = logs[build.id] { return live }
        return BuildLog.load(
            path: logDirectory + "/\(build.id).log", status: build.status == "building" ? "failed" : build.status, error: build.error)
    }

    /// Removes a deleted template's manifest, images and logs. Sandboxes still running
    /// from it keep their files open; its snapshots go with the next cleanup of the folder.
    package func removeFiles(of name: String) async {
        ImageCatalog.unpublish(name, from: builder.configuration.manifestDirectory)
        if ImageCatalog.isValidName(name) {
            try? FileManager.default.removeItem(atPath: builder.configuration.manifestDirectory + "/\(name).build")
        }
        try? FileManager.default.removeItem(atPath: builder.configuration.imageDirectory + "/\(name)")
    }

    /// Waits for every build (server shutdown, tests).
    package func waitForBuilds() async {
        for task in tasks.values { await task.value }
    }
}

package func randomHex(_ bytes: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
}
