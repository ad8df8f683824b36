import Foundation
import Logging
import OmniRunError
import OmniRunStore
import SandboxRuntime
import TemplateBuilder

/// The templates this node offers: the built-in catalogue (its definitions in
/// `images/templates`, its images in the cache), usable by every account, and the
/// templates users built from Dockerfiles, visible and usable only by their owner.
package actor TemplateService {
    package nonisolated let runtime: SandboxRuntime
    package nonisolated let builtIns: BuiltInTemplates
    package nonisolated let repository: TemplateRepository
    package nonisolated let builds: TemplateBuilds
    package nonisolated let uploadDirectory: String
    private let logger: Logger

    package init(
        runtime: SandboxRuntime, builtIns: BuiltInTemplates, repository: TemplateRepository, builds: TemplateBuilds,
        uploadDirectory: String, logger: Logger
    ) {
        self.runtime = runtime
        self.builtIns = builtIns
        self.repository = repository
        self.builds = builds
        self.uploadDirectory = uploadDirectory
        self.logger = logger
    }

    /// Every built-in template (built or not), other images built outside the catalogue,
    /// then the account's own templates.
    package func list(account: AccountRecord) async throws -> [TemplateView] {
        var views: [TemplateView] = []
        var seen: Set<String> = []
        let custom = try await repository.all()
        let customNames = Set(custom.map(\.name))
        for definition in builtIns.definitions() {
            views.append(await builtInView(definition.name, definition: definition))
            seen.insert(definition.name)
        }
        for name in runtime.catalog.templates() where !seen.contains(name) && !customNames.contains(name) {
            views.append(await builtInView(name, definition: nil))
        }
        for record in custom where record.accountID == account.id {
            views.append(await customView(record))
        }
        return views
    }

    package func find(_ name: String, account: AccountRecord) async throws -> TemplateView {
        let resolved = runtime.catalog.resolve(name)
        if let definition = builtIns.definition(resolved) { return await builtInView(resolved, definition: definition) }
        if ImageCatalog.isValidName(resolved), let record = try await repository.find(name: resolved) {
            guard record.accountID == account.id else { throw notFound(name) }
            return await customView(record)
        }
        if ImageCatalog.isValidName(resolved), runtime.catalog.isBuilt(resolved) {
            return await builtInView(resolved, definition: nil)
        }
        throw notFound(name)
    }

    /// Whether an account may create sandboxes of a template: built-ins are everyone's,
    /// a custom template only its owner's (others get the 404 of a missing one), and only
    /// once a build of it has succeeded.
    @discardableResult
    package func checkAccess(_ name: String, account: AccountRecord) async throws -> TemplateRecord? {
        let resolved = runtime.catalog.resolve(name)
        guard ImageCatalog.isValidName(resolved), !builtIns.contains(resolved),
            let record = try await repository.find(name: resolved)
        else { return nil }
        guard record.accountID == account.id else { throw notFound(name) }
        guard record.published else {
            throw OmniRunError(
                .conflict,
                record.status == "building"
                    ? "template \(name) is still being built (build \(record.latestBuild))"
                    : "template \(name) has no successful build (see build \(record.latestBuild))")
        }
        return record
    }

    /// `POST /templates`: validates, claims the name and starts the build of `dockerfile`
    /// with the build context at `contextPath` (a tar, if any); `onEnd` runs once the build
    /// has ended and its context is deleted.
    package func create(
        dockerfile: String, settings: TemplateSettings, contextPath: String?, account: AccountRecord,
        onEnd: @escaping @Sendable () async -> Void = {}
    ) async throws -> (TemplateView, TemplateBuildRecord) {
        let (record, build) = try await builds.start(
            dockerfile: dockerfile, settings: settings, contextPath: contextPath, account: account, onEnd: onEnd)
        return (await customView(record), build)
    }

    /// A build of one of the account's templates, with its log.
    package func build(_ name: String, id: String, account: AccountRecord) async throws -> (TemplateBuildRecord, BuildLog) {
        guard let build = try await repository.build(id: id), build.template == name, build.accountID == account.id else {
            throw OmniRunError(.notFound, "build \(id) of template \(name) not found")
        }
        return (build, await builds.log(build))
    }

    /// `DELETE /templates/{name}`: the template and its builds; sandboxes already running
    /// from it keep running (their files stay open).
    package func delete(_ name: String, account: AccountRecord) async throws {
        if builtIns.contains(name) || ImageCatalog.aliases[name] != nil {
            throw OmniRunError(.forbidden, "built-in templates cannot be deleted")
        }
        guard ImageCatalog.isValidName(name), let record = try await repository.find(name: name), record.accountID == account.id
        else { throw notFound(name) }
        guard record.status != "building" else {
            throw OmniRunError(.conflict, "template \(name) is being built (build \(record.latestBuild)); delete it afterwards")
        }
        try await repository.delete(name: name)
        await builds.removeFiles(of: name)
        logger.info("template deleted", metadata: ["template": "\(name)", "account": "\(account.id)"])
    }

    private func notFound(_ name: String) -> OmniRunError {
        OmniRunError(.notFound, "template \(name) not found")
    }

    private func builtInView(_ name: String, definition: TemplateDefinition?) async -> TemplateView {
        let aliases = ImageCatalog.aliases.filter { $0.value == name }.map(\.key).sorted()
        // A built image's figures are what its sandboxes get; the definition's apply once it is built.
        if let built = try? runtime.catalog.template(named: name) {
            let snapshot = await runtime.snapshotState(of: name)
            return TemplateView(
                templateID: name, name: name, description: built.description ?? definition?.description, builtIn: true,
                public: true, cpuCount: built.image.vcpus, memoryMB: built.image.memoryMB,
                diskMB: built.image.diskMB ?? definition?.diskMB ?? 0, status: "ready", snapshot: snapshot.rawValue,
                aliases: aliases, parent: definition?.parent, buildHint: nil)
        }
        return TemplateView(
            templateID: name, name: name, description: definition?.description, builtIn: true, public: true,
            cpuCount: definition?.vcpus ?? 1, memoryMB: definition?.memoryMB ?? 256, diskMB: definition?.diskMB ?? 0,
            status: "not_built", snapshot: SnapshotState.missing.rawValue, aliases: aliases, parent: definition?.parent,
            buildHint: "make image TEMPLATE=\(name)")
    }

    private func customView(_ record: TemplateRecord) async -> TemplateView {
        let snapshot = record.published ? await runtime.snapshotState(of: record.name) : .missing
        // The published version's configuration (ports, start command, ready check).
        let published = record.published ? try? runtime.catalog.template(named: record.name) : nil
        return TemplateView(
            templateID: record.name, name: record.name, description: record.description, builtIn: false, public: false,
            cpuCount: record.cpuCount, memoryMB: record.memoryMB, diskMB: record.diskMB, status: record.status,
            snapshot: snapshot.rawValue, aliases: [], parent: nil, buildHint: nil, buildID: record.latestBuild,
            usable: record.published, createdAt: isoDate(record.createdAt), updatedAt: isoDate(record.updatedAt),
            ports: published?.defaults.ports, startCmd: published?.setup.start, readyCmd: published?.setup.ready)
    }
}
