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
/// an unchanged prefix of steps is not run again. The last layer is flattened into
/// the template's raw image; its snapshot is taken (with the start command running
/// once the ready check passes) before the template's manifest is published, so a
/// failed build leaves the previous version in place.
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

        public init(dockerfile: Dockerfile, settings: TemplateSettings, contextPath: String?, scope: String) {
            self.dockerfile = dockerfile
            self.settings = settings
            self.contextPath = contextPath
            self.scope = scope
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

    /// The built-in template a `FROM` names.
    public static func baseTemplate(for from: String) -> String? {
        let lower = from.lowercased()
        if debianAliases.contains(lower) { return "playground" }
        let name = lower.hasPrefix("omnirun/") ? String(lower.dropFirst(8)) : lower
        return ImageCatalog.isValidName(name) ? name : nil
    }

    /// Checks what can be checked before a build starts (the errors a user should get at
    /// once: COPY without a context, a source outside it, a bad USER…).
    public static func validate(_ dockerfile: Dockerfile, settings: TemplateSettings, hasContext: Bool) throws {
        _ = try BuildPlan.make(
            dockerfile, buildArgs: settings.buildArgs ?? [:], scope: "validate", baseKey: "validate", growTo: nil,
            contextHash: hasContext ? "validate" : nil)
    }

    /// Runs a build to the end; the log gets every step's output.
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
        let plan = try BuildPlan.make(
            request.dockerfile, buildArgs: settings.buildArgs ?? [:], scope: request.scope, baseKey: base.image.key,
            growTo: settings.diskMB.flatMap { $0 > baseDisk ? $0 : nil }, contextHash: contextHash)
        log.append("building template \(settings.name) from \(baseName) (\(plan.steps.count) steps that change the disk)")
        for (line, title) in plan.configurationLines { log.append("line \(line): \(title)") }

        // Layers: the longest cached prefix is reused; the rest runs, one machine per step.
        var parent = base.image.rootfs
        let total = plan.steps.count
        for (index, step) in plan.steps.enumerated() {
            let layer = configuration.layerDirectory + "/\(step.key).qcow2"
            let header = "step \(index + 1)/\(total)\(step.line > 0 ? " (line \(step.line))" : ""): \(step.title)"
            if fm.fileExists(atPath: layer) {
                log.append("\(header)\n  cached")
                parent = layer
                continue
            }
            log.append(header)
            let stepStarted = ContinuousClock.now
            try await runStep(step, parent: parent, into: layer, base: base, request: request, log: log)
            log.append("  done in \(Self.seconds(ContinuousClock.now - stepStarted))")
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
        let setup = TemplateSetup(
            warmUp: prepare, start: settings.startCmd, ready: settings.readyCmd,
            readyTimeout: .seconds(settings.readyTimeout ?? 120), user: user, env: plan.env,
            cwd: plan.workdir == "/" ? nil : plan.workdir)
        let template = TemplateImage(
            image: image, setup: setup, description: settings.description,
            defaults: TemplateDefaults(env: plan.env, user: plan.user, workdir: plan.workdir == "/" ? nil : plan.workdir))

        // The snapshot, with the service up; only then is the new version published.
        if settings.startCmd != nil || settings.readyCmd != nil {
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

    /// Boots a build machine on `parent`, runs the step, keeps the disk's changes as `layer`.
    private func runStep(
        _ step: BuildPlan.Step, parent: String, into layer: String, base: TemplateImage, request: Request, log: BuildLog
    ) async throws {
        let fm = FileManager.default
        let id = UUID().uuidString.prefix(8).lowercased()
        let work = configuration.layerDirectory + "/.build-\(id)"
        try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: work) }
        let image = MachineImage(
            template: "build-\(request.settings.name)", kernel: base.image.kernel, initrd: base.image.initrd, rootfs: parent,
            vcpus: max(request.settings.cpuCount ?? base.image.vcpus, 1),
            memoryMB: max(request.settings.memoryMB ?? base.image.memoryMB, configuration.buildMemoryMB),
            diskMB: nil, key: "build")
        let machineName = "build-\(id)"
        let machine = try await runtime.bootBuildMachine(image: image, name: machineName)
        defer { Task { await runtime.releaseBuildMachine(machineName) } }
        do {
            let agent = try await GuestAgentClient.connect(
                socketPath: machine.agentSocketPath, name: "template build \(request.settings.name)", timeout: .seconds(120),
                logger: logger, starvedFor: { machine.starvation() }, giveUpIf: { await machine.state.isTerminal ? "\(await machine.state)" : nil })
            defer { Task { await agent.close() } }
            try await execute(step, agent: agent, contextPath: request.contextPath, log: log)
            try await agent.prepareSnapshot()  // sync: the disk holds everything the step wrote
            await agent.close()
            let saved = try await machine.snapshot(into: work + "/saved")
            try fm.moveItem(atPath: saved.diskFile, toPath: layer + ".tmp")
            try fm.moveItem(atPath: layer + ".tmp", toPath: layer)
        } catch {
            await machine.destroy()
            throw error
        }
    }

    private func execute(_ step: BuildPlan.Step, agent: GuestAgentClient, contextPath: String?, log: BuildLog) async throws {
        let timeout = Int64(configuration.stepTimeout.components.seconds * 1000)
        switch step.action {
        case .growFileSystem:
            try await checked(
                agent, ProcessStartRequest(argv: ["/bin/sh", "-c", "resize2fs \"$(findmnt -no SOURCE /)\""], user: "root", timeoutMillis: timeout),
                step: step, log: log)
        case .run(let shell, let argv):
            if step.workdir != "/" {
                _ = try await agent.run(ProcessStartRequest(argv: ["mkdir", "-p", step.workdir], user: "root"))
            }
            let command = argv ?? ["/bin/sh", "-c", shell ?? ""]
            try await checked(
                agent, ProcessStartRequest(argv: command, env: step.env, cwd: step.workdir, user: step.user, timeoutMillis: timeout),
                step: step, log: log)
        case .copy(let sources, let destination, let chown, let chmod, let extract):
            guard let contextPath else { throw OmniRunError(.invalidArgument, "COPY needs a build context") }
            let staged = "/tmp/.omnirun-context.tar"
            _ = try await agent.writeFile(
                path: staged, user: "root", mode: 0o600,
                chunks: FileChunks(path: contextPath))
            var argv = ["/bin/bash", "-c", CopyScript.text, "copy", staged, destination, chown ?? "", chmod ?? "", extract ? "1" : "0"]
            argv += sources
            try await checked(agent, ProcessStartRequest(argv: argv, cwd: "/", user: "root", timeoutMillis: timeout), step: step, log: log)
        }
    }

    /// Runs a step's process with its output in the log; a non-zero exit fails the build.
    private func checked(_ agent: GuestAgentClient, _ request: ProcessStartRequest, step: BuildPlan.Step, log: BuildLog) async throws {
        let collector = StepOutput(log: log)
        try await agent.startProcess(request) { event in
            switch event.type {
            case .stdout, .stderr, .pty:
                if let data = event.data, let bytes = Data(base64Encoded: data) { collector.add(bytes) }
            case .end:
                collector.ended(exitCode: event.exitCode ?? -1, error: event.error)
            default:
                break
            }
        }
        collector.flush()
        let (exitCode, failure) = collector.end ?? (-1, "the agent ended the step without its exit")
        guard exitCode == 0 else {
            let tail = log.tail(15).joined(separator: "\n")
            let what = step.line > 0 ? "line \(step.line): \(step.title)" : step.title
            throw OmniRunError(
                .invalidArgument,
                "build step failed (\(what)) with exit code \(exitCode)\(failure.map { " (\($0))" } ?? "")\n\(tail)")
        }
    }

    private func flatten(_ layer: String, into output: String) async throws {
        let tmp = output + ".tmp"
        try? FileManager.default.removeItem(atPath: tmp)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: configuration.qemuImg)
        process.arguments = ["convert", "-q", "-O", "raw", layer, tmp]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            try? FileManager.default.removeItem(atPath: tmp)
            throw OmniRunError(.internalError, "flattening the template image failed: \(message)")
        }
        try FileManager.default.moveItem(atPath: tmp, toPath: output)
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

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1fs", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    static func shellQuote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
