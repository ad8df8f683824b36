import Foundation
import OmniRunCore
import OmniRunError

/// What runs in a template's machine before its snapshot is taken.
public struct TemplateSetup: Sendable, Equatable {
    /// Shell commands run as root, one after the other, to fill the page cache.
    public var warmUp: [String]
    /// A command started as root in the background (a service every sandbox finds running).
    public var start: String?
    /// A command retried until it exits 0; the snapshot is taken once it does.
    public var ready: String?
    /// How long `ready` may keep failing.
    public var readyTimeout: Duration
    /// Who runs `start` and `ready`, where, and with what environment (a custom template's
    /// USER, WORKDIR and ENV; root in `/` for the built-ins).
    public var user: String
    public var env: [String: String]
    public var cwd: String?

    public init(
        warmUp: [String] = [], start: String? = nil, ready: String? = nil, readyTimeout: Duration = .seconds(120),
        user: String = "root", env: [String: String] = [:], cwd: String? = nil
    ) {
        self.warmUp = warmUp
        self.start = start
        self.ready = ready
        self.readyTimeout = readyTimeout
        self.user = user
        self.env = env
        self.cwd = cwd
    }

    /// What a snapshot depends on beyond its image: a service started before it.
    /// Warm-up commands only fill caches, so they do not count.
    var snapshotKeyPart: String? {
        guard start != nil || ready != nil else { return nil }
        var part = "start=\(start ?? "")|ready=\(ready ?? "")"
        if user != "root" || !env.isEmpty || cwd != nil {
            part += "|user=\(user)|cwd=\(cwd ?? "")|env=" + env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{0}")
        }
        return part
    }
}

/// What a template's sandboxes start with besides their disk: environment, default
/// user and working directory (a Dockerfile's ENV, USER and WORKDIR).
public struct TemplateDefaults: Sendable, Equatable {
    public var env: [String: String]
    public var user: String?
    public var workdir: String?
    /// The ports the template's service listens on (a Dockerfile's `EXPOSE`), for clients to show.
    public var ports: [Int]

    public init(env: [String: String] = [:], user: String? = nil, workdir: String? = nil, ports: [Int] = []) {
        self.env = env
        self.user = user
        self.workdir = workdir
        self.ports = ports
    }
}

/// A built template: its machine image and what runs before its snapshot.
public struct TemplateImage: Sendable {
    public var image: MachineImage
    public var setup: TemplateSetup
    public var description: String?
    public var defaults: TemplateDefaults

    public init(image: MachineImage, setup: TemplateSetup, description: String?, defaults: TemplateDefaults = .init()) {
        self.image = image
        self.setup = setup
        self.description = description
        self.defaults = defaults
    }
}

/// The guest images built by `scripts/build-image.sh`: one manifest per template
/// under `<cache>/images/<template>.json`.
public struct ImageCatalog: Sendable {
    public let cacheDirectory: String
    /// More folders of manifests, searched after the cache's (custom templates).
    public let extraManifestDirectories: [String]

    public init(cacheDirectory: String, extraManifestDirectories: [String] = []) {
        self.cacheDirectory = cacheDirectory
        self.extraManifestDirectories = extraManifestDirectories
    }

    /// `$OMNIRUN_CACHE_DIR`, else `$HOME/.cache/omnirun`.
    public static func defaultCacheDirectory(environment env: [String: String]) -> String {
        if let dir = env["OMNIRUN_CACHE_DIR"], !dir.isEmpty { return dir }
        return (env["HOME"] ?? "/root") + "/.cache/omnirun"
    }

    /// Names users may ask for, mapped to the image that serves them.
    public static let aliases: [String: String] = [
        "python-3.11": "playground", "python": "playground", "base": "playground",
        // The product docs' networking example: `Sandbox.create('agent', …)`.
        "agent": "claude-agent",
    ]

    public func resolve(_ name: String) -> String {
        Self.aliases[name] ?? name
    }

    /// Template names: lower-case letters, digits, `-`, `_` and `.`, starting with a letter or digit.
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.count <= 64,
            ("a"..."z").contains(first) || ("0"..."9").contains(first)
        else { return false }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" || $0 == "."
        }
    }

    /// What a lookup accepts (letters, digits, `-`, `_`, `.`; nothing that walks paths).
    static func isLookupName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 128 && !name.hasPrefix(".")
            && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }
    }

    public func image(for template: String) throws -> MachineImage {
        try self.template(named: template).image
    }

    /// The manifest of a template, with the files it names checked.
    public func template(named template: String) throws -> TemplateImage {
        let resolved = resolve(template)
        guard Self.isLookupName(resolved) else {
            throw OmniRunError(.invalidArgument, "invalid template name '\(template)'")
        }
        guard let path = manifestPath(resolved), let data = FileManager.default.contents(atPath: path) else {
            // Only the built-in images: custom templates' names are their owners' business.
            let available = builtInTemplates()
            throw OmniRunError(
                .notFound,
                "template '\(template)' is not built (available: \(available.isEmpty ? "none; run `make image`" : available.joined(separator: ", ")))"
            )
        }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch {
            throw OmniRunError(.internalError, "image manifest \(path) is malformed: \(error)")
        }
        guard let initrd = manifest.initrd else {
            throw OmniRunError(.notFound, "template '\(template)' has no agent initramfs yet; run `make image`")
        }
        for file in [manifest.kernel, initrd, manifest.rootfs] where !FileManager.default.fileExists(atPath: file) {
            throw OmniRunError(.notFound, "template '\(template)' is missing \(file); run `make image TEMPLATE=\(resolved)`")
        }
        let image = MachineImage(
            template: manifest.template, kernel: manifest.kernel, initrd: initrd, rootfs: manifest.rootfs,
            vcpus: manifest.vcpus ?? 1, memoryMB: manifest.memoryMB ?? 256, diskMB: manifest.diskMB, key: manifest.key)
        let setup = TemplateSetup(
            warmUp: manifest.warmUp.map { [$0] } ?? [], start: manifest.start, ready: manifest.ready,
            readyTimeout: .seconds(manifest.readyTimeout ?? 120), user: manifest.startUser ?? "root", env: manifest.env ?? [:],
            cwd: manifest.workdir)
        return TemplateImage(
            image: image, setup: setup, description: manifest.description,
            defaults: TemplateDefaults(env: manifest.env ?? [:], user: manifest.user, workdir: manifest.workdir, ports: manifest.ports ?? []))
    }

    /// Writes a template's manifest into `directory` in one rename (custom templates:
    /// the new version is what the next create finds; running sandboxes keep theirs).
    public static func publish(_ template: TemplateImage, into directory: String) throws {
        let image = template.image
        let manifest = Manifest(
            template: image.template, kernel: image.kernel, initrd: image.initrd, rootfs: image.rootfs, vcpus: image.vcpus,
            memoryMB: image.memoryMB, diskMB: image.diskMB, key: image.key, description: template.description,
            warmUp: template.setup.warmUp.isEmpty ? nil : template.setup.warmUp.joined(separator: " && "),
            start: template.setup.start, ready: template.setup.ready,
            readyTimeout: Int(template.setup.readyTimeout.components.seconds), startUser: template.setup.user,
            env: template.defaults.env.isEmpty ? nil : template.defaults.env, user: template.defaults.user,
            workdir: template.defaults.workdir, ports: template.defaults.ports.isEmpty ? nil : template.defaults.ports)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/\(image.template).json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(manifest).write(to: URL(fileURLWithPath: path + ".tmp"))
        guard rename(path + ".tmp", path) == 0 else {
            throw OmniRunError(.internalError, "cannot publish \(path): errno \(errno)")
        }
    }

    /// Removes a published manifest (the template's files stay for sandboxes still running).
    public static func unpublish(_ name: String, from directory: String) {
        guard isValidName(name) else { return }
        try? FileManager.default.removeItem(atPath: directory + "/\(name).json")
    }

    /// Whether a template's manifest exists (the files it names are not checked).
    public func isBuilt(_ template: String) -> Bool {
        let resolved = resolve(template)
        return Self.isLookupName(resolved) && manifestPath(resolved) != nil
    }

    /// The images of the cache (`scripts/build-image.sh`): the templates every account may
    /// use and see, none of the custom ones.
    public func builtInTemplates() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: cacheDirectory + "/images")) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Templates with a manifest (custom ones too).
    public func templates() -> [String] {
        var names: Set<String> = []
        for directory in [cacheDirectory + "/images"] + extraManifestDirectories {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for file in files where file.hasSuffix(".json") { names.insert(String(file.dropLast(5))) }
        }
        return names.sorted()
    }

    private func manifestPath(_ name: String) -> String? {
        for directory in [cacheDirectory + "/images"] + extraManifestDirectories {
            let path = directory + "/\(name).json"
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        return nil
    }

    /// `<cache>/images/<template>.json` as `scripts/build-image.sh` writes it.
    struct Manifest: Codable {
        var template: String
        var kernel: String
        var initrd: String?
        var rootfs: String
        var vcpus: Int?
        var memoryMB: Int?
        var diskMB: Int?
        var key: String
        var description: String?
        var warmUp: String?
        var start: String?
        var ready: String?
        var readyTimeout: Int?
        /// Custom templates: who runs start/ready, ENV, USER and WORKDIR.
        var startUser: String? = nil
        var env: [String: String]? = nil
        var user: String? = nil
        var workdir: String? = nil
        /// Custom templates: the ports of `EXPOSE`.
        var ports: [Int]? = nil
    }
}

/// Where a template's snapshot stands on this node.
public enum SnapshotState: String, Sendable {
    /// Not taken yet: the first create (or `omnirun prepare`) takes it.
    case missing
    /// Being taken by this process.
    case building
    /// Taken: creates are restores.
    case ready
}
