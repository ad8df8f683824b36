import AgentClient
import AgentProtocol
import Foundation
import Logging
import OmniRunCore
import OmniRunError
import SandboxRuntime

/// Builds custom templates from a Dockerfile. Every step that changes the disk runs
/// inside a build machine (a microVM booted from the previous layer), never on the
/// host; its result is a qcow2 layer over its parent, cached by the step's key, so
/// an unchanged prefix of steps is not run again. `RUN` steps have a network card (the
/// build egress policy) through the same namespaces and firewalls as sandboxes with
/// internet access. The last layer is flattened into the template's raw image; its
/// snapshot is taken (with the start command running once the ready check passes)
/// before the template's manifest is published, so a failed build leaves the previous
/// version in place.
public actor TemplateBuilder {
    public struct Configuration: Sendable {
        /// Layers: `<cache>/template-layers/<key>.qcow2`, shared by builds (keys are per account).
        public var layerDirectory: String
        /// Published manifests (the catalog's extra folder) and flattened images.
        public var templateDirectory: String
        /// `qemu-img`, for flattening.
        public var qemuImg: String = "/usr/bin/qemu-img"
        /// How long one build step may run.
        public var stepTimeout: Duration = .seconds(3600)
        /// Memory of build machines (at least; a template asking for more gets its own).
        public var buildMemoryMB: Int = 1024
        /// What `RUN` and `ADD <url>` steps may reach (`OMNIRUN_BUILD_EGRESS`, default `open`).
        public var egress: BuildEgress = .open
        /// A step that prints nothing for this long gets a "still running" line.
        public var quietStepNotice: Duration = .seconds(30)
        /// PEM certificates that `RUN` and `ADD <url>` steps trust besides the image's own
        /// (`OMNIRUN_BUILD_CA_FILE`, default the host's bundle): a TLS-inspecting proxy between
        /// this host and the registries is then trusted by builds as by the host. Given to a
        /// step through the usual variables (`SSL_CERT_FILE`, `PIP_CERT`, `NODE_EXTRA_CA_CERTS`,
        /// …) and a file in the build machine's `/run`, never written to the template's disk.
        public var trustedCertificates: String?

        public init(layerDirectory: String, templateDirectory: String) {
            self.layerDirectory = layerDirectory
            self.templateDirectory = templateDirectory
        }

        public var manifestDirectory: String { templateDirectory + "/manifests" }
        public var imageDirectory: String { templateDirectory + "/images" }
    }

    /// One build's inputs.
    public struct Request: Sendable {
        public var dockerfile: Dockerfile
        public var settings: TemplateSettings
        /// The build context (a tar file), if any.
        public var contextPath: String?
        /// Caches are per scope (the account).
        public var scope: String
        /// Names this build (`--no-cache` layers are its own).
        public var buildID: String

        public init(dockerfile: Dockerfile, settings: TemplateSettings, contextPath: String?, scope: String, buildID: String = UUID().uuidString) {
            self.dockerfile = dockerfile
            self.settings = settings
            self.contextPath = contextPath
            self.scope = scope
            self.buildID = buildID
        }
    }

    /// Base images a Dockerfile may name besides the built-in templates.
    public static let debianAliases: Set<String> = ["debian:bookworm", "debian:12", "debian:bookworm-slim", "debian:12-slim"]

    public nonisolated let runtime: SandboxRuntime
    public nonisolated let configuration: Configuration
    let logger: Logger

    public init(runtime: SandboxRuntime, configuration: Configuration, logger: Logger) {
        self.runtime = runtime
        self.configuration = configuration
        self.logger = logger
    }

    /// The built-in template a `FROM` (or `COPY --from`) names.
    public static func baseTemplate(for from: String) -> String? {
        let lower = from.lowercased()
        if debianAliases.contains(lower) { return "playground" }
        let name = lower.hasPrefix("omnirun/") ? String(lower.dropFirst(8)) : lower
        return ImageCatalog.isValidName(name) ? name : nil
    }

    /// Checks what can be checked before a build starts (the errors a user should get at
    /// once: COPY without a context, a source outside it, a bad USER, a `COPY --from` of a
    /// template that is not built…). `template` answers a built-in template's image.
    public static func validate(
        _ dockerfile: Dockerfile, settings: TemplateSettings, hasContext: Bool,
        template: (String) throws -> (rootfs: String, key: String) = { _ in ("", "") }
    ) throws {
        _ = try BuildPlan.make(
            dockerfile, buildArgs: settings.buildArgs ?? [:], scope: "validate", baseKey: "validate", growTo: nil,
            contextHash: hasContext ? "validate" : nil, template: template)
    }

    /// A built-in template's image (never a user's: only the cache's own manifests count).
    nonisolated func builtInImage(_ name: String) throws -> (rootfs: String, key: String) {
        let image = try ImageCatalog(cacheDirectory: runtime.catalog.cacheDirectory).template(named: name).image
        return (image.rootfs, image.key)
    }

    /// Runs a build to the end; the log gets every step's output and progress.
    public func build(_ request: Request, log: BuildLog) async throws -> TemplateImage {
        let started = ContinuousClock.now
        let settings = request.settings
        let fm = FileManager.default
        for directory in [configuration.layerDirectory, configuration.manifestDirectory, configuration.imageDirectory] {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        guard let baseName = Self.baseTemplate(for: request.dockerfile.from) else {
            throw OmniRunError(.invalidArgument, "Dockerfile: FROM \(request.dockerfile.from): use a built-in template or debian:bookworm")
        }
        let base: TemplateImage
        do {
            base = try runtime.catalog.template(named: baseName)
        } catch let error as OmniRunError where error.code == .notFound {
            throw OmniRunError(
                .invalidArgument, "Dockerfile: FROM \(request.dockerfile.from): the \(baseName) template is not built on this server")
        }
        let baseDisk = base.image.diskMB ?? 0
        if let disk = settings.diskMB, disk < baseDisk {
            throw OmniRunError(.invalidArgument, "diskMB \(disk) is smaller than the base template's \(baseDisk) MiB")
        }
        let contextHash = try request.contextPath.map { try Self.fileHash($0) }
        let noCache = settings.noCache == true
        let plan = try BuildPlan.make(
            request.dockerfile, buildArgs: settings.buildArgs ?? [:], scope: request.scope, baseKey: base.image.key,
            growTo: settings.diskMB.flatMap { $0 > baseDisk ? $0 : nil }, contextHash: contextHash,
            salt: noCache ? request.buildID : nil, template: { try self.builtInImage($0) })
        log.append("building template \(settings.name) from \(baseName) (\(plan.steps.count) steps that change the disk)")
        let egress = try await effectiveEgress(log: log)
        let certificates = egress == .off ? nil : try trustedCertificates(log: log)
        if noCache { log.append("--no-cache: every step runs again") }
        for (line, title) in plan.configurationLines { log.append("line \(line): \(title)") }

        // Layers: the longest cached prefix is reused; the rest runs, one machine per step.
        var parent = base.image.rootfs
        var made: [String] = []
        // A --no-cache build's layers are its own (no later build can find them): they go
        // once its image is flattened, or with the build when it fails.
        defer { if noCache { for layer in made { try? fm.removeItem(atPath: layer) } } }
        let total = plan.steps.count
        for (index, step) in plan.steps.enumerated() {
            let layer = configuration.layerDirectory + "/\(step.key).qcow2"
            @Sendable func progress(_ status: StepProgress.Status, _ elapsed: Duration? = nil) -> StepProgress {
                StepProgress(
                    step: index + 1, total: total, line: step.line > 0 ? step.line : nil, command: step.title, status: status,
                    elapsedSeconds: elapsed.map(Self.secondsValue))
            }
            if fm.fileExists(atPath: layer) {
                log.step(progress(.cached))
                parent = layer
                continue
            }
            log.step(progress(.running))
            let stepStarted = ContinuousClock.now
            do {
                try await runStep(
                    step, parent: parent, into: layer, base: base, request: request, egress: egress, certificates: certificates,
                    log: log, progress: { progress(.running, $0) })
            } catch {
                log.step(progress(.failed, ContinuousClock.now - stepStarted))
                throw error
            }
            log.step(progress(.done, ContinuousClock.now - stepStarted))
            made.append(layer)
            parent = layer
        }

        // The template's image: the last layer flattened (a raw file like the built-ins').
        let memoryMB = settings.memoryMB ?? base.image.memoryMB
        let vcpus = settings.cpuCount ?? base.image.vcpus
        let diskMB = max(settings.diskMB ?? baseDisk, baseDisk)
        let imageKey = BuildPlan.hash(["template-image-v1", plan.finalKey, "\(diskMB)"])
        let rootfs = configuration.imageDirectory + "/\(settings.name)/\(imageKey).ext4"
        try fm.createDirectory(atPath: configuration.imageDirectory + "/\(settings.name)", withIntermediateDirectories: true)
        if parent == base.image.rootfs {
            // Nothing changed the disk: the base image serves as it is.
        } else if !fm.fileExists(atPath: rootfs) {
            log.append("flattening the layers into the template's image")
            try await flatten(parent, into: rootfs)
        }
        let finalRootfs = parent == base.image.rootfs ? base.image.rootfs : rootfs
        let key = BuildPlan.hash([imageKey, base.image.kernel, base.image.initrd, "\(vcpus)", "\(memoryMB)"])
        let image = MachineImage(
            template: settings.name, kernel: base.image.kernel, initrd: base.image.initrd, rootfs: finalRootfs, vcpus: vcpus,
            memoryMB: memoryMB, diskMB: diskMB, key: String(key.prefix(16)))
        let user = plan.user ?? "user"
        var prepare: [String] = []
        if plan.workdir != "/" { prepare.append("mkdir -p \(Self.shellQuote(plan.workdir))") }
        let start = settings.startCmd ?? plan.startCommand
        let ready = settings.readyCmd ?? plan.readyCommand
        if settings.startCmd == nil, let start { log.append("start command (from CMD/ENTRYPOINT): \(start)") }
        if settings.readyCmd == nil, let ready { log.append("ready check (from HEALTHCHECK): \(ready)") }
        if !plan.ports.isEmpty { log.append("ports (from EXPOSE): \(plan.ports.map(String.init).joined(separator: ", "))") }
        let setup = TemplateSetup(
            warmUp: prepare, start: start, ready: ready, readyTimeout: .seconds(settings.readyTimeout ?? 120), user: user,
            env: plan.env, cwd: plan.workdir == "/" ? nil : plan.workdir)
        let template = TemplateImage(
            image: image, setup: setup, description: settings.description,
            defaults: TemplateDefaults(
                env: plan.env, user: plan.user, workdir: plan.workdir == "/" ? nil : plan.workdir, ports: plan.ports))

        // The snapshot, with the service up; only then is the new version published.
        if start != nil || ready != nil {
            log.append("starting the template (start command, then the ready check) and taking its snapshot")
        } else {
            log.append("taking the template's snapshot")
        }
        let snapshotStarted = ContinuousClock.now
        try await runtime.prepare(template)
        log.append("snapshot ready in \(Self.seconds(ContinuousClock.now - snapshotStarted))")
        try ImageCatalog.publish(template, into: configuration.manifestDirectory)
        log.append("template \(settings.name) built in \(Self.seconds(ContinuousClock.now - started))")
        logger.info(
            "template built", metadata: ["template": "\(settings.name)", "steps": "\(plan.steps.count)", "took": "\(ContinuousClock.now - started)"])
        return template
    }

    /// The build's network as configured, or none (with the reason in the log) where this
    /// server cannot give machines a network.
    private func effectiveEgress(log: BuildLog) async throws -> BuildEgress {
        guard configuration.egress != .off else {
            log.append("network of RUN steps: \(BuildEgress.off.summary)")
            return .off
        }
        if let reason = await runtime.buildNetworkUnavailable() {
            log.append("network of RUN steps: none, as this server cannot give machines a network (\(reason))")
            return .off
        }
        log.append("network of RUN steps: \(configuration.egress.summary)")
        return configuration.egress
    }

    /// The certificates steps with a network trust besides the image's (at most 4 MiB of PEM).
    private func trustedCertificates(log: BuildLog) throws -> [UInt8]? {
        guard let path = configuration.trustedCertificates else { return nil }
        guard let data = FileManager.default.contents(atPath: path), !data.isEmpty, data.count <= 4 << 20,
            String(decoding: data, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----")
        else {
            throw OmniRunError(.unavailable, "OMNIRUN_BUILD_CA_FILE \(path) is not a readable PEM file of at most 4 MiB")
        }
        log.append("RUN steps also trust the certificates of \(path) (OMNIRUN_BUILD_CA_FILE)")
        return Array(data)
    }

    static func fileHash(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw OmniRunError(.internalError, "cannot read the build context \(path)")
        }
        defer { try? handle.close() }
        var hasher = SHA256Stream()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(chunk) }
        return hasher.hex
    }

    static func secondsValue(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1fs", secondsValue(duration))
    }

    static func shellQuote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
