import Foundation
import Logging
import OmniRunError
import SandboxRuntime

/// The templates this node offers: the built-in catalogue (its definitions in
/// `images/templates`, its images in the cache) with each one's figures and build state.
actor TemplateService {
    let runtime: SandboxRuntime
    let builtIns: BuiltInTemplates
    private let logger: Logger

    init(runtime: SandboxRuntime, builtIns: BuiltInTemplates, logger: Logger) {
        self.runtime = runtime
        self.builtIns = builtIns
        self.logger = logger
    }

    /// Every built-in template (built or not), then images built outside the catalogue.
    func list() async -> [TemplateView] {
        var views: [TemplateView] = []
        var seen: Set<String> = []
        for definition in builtIns.definitions() {
            views.append(await view(definition.name, definition: definition))
            seen.insert(definition.name)
        }
        for name in runtime.catalog.templates() where !seen.contains(name) {
            views.append(await view(name, definition: nil))
        }
        return views
    }

    func find(_ name: String) async throws -> TemplateView {
        let resolved = runtime.catalog.resolve(name)
        if let definition = builtIns.definition(resolved) { return await view(resolved, definition: definition) }
        if ImageCatalog.isValidName(resolved), runtime.catalog.isBuilt(resolved) { return await view(resolved, definition: nil) }
        throw OmniRunError(.notFound, "template \(name) not found")
    }

    private func view(_ name: String, definition: TemplateDefinition?) async -> TemplateView {
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
}
