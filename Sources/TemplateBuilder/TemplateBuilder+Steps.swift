import AgentClient
import AgentProtocol
import Foundation
import OmniRunCore
import OmniRunError
import SandboxRuntime

/// One step in its build machine: boot on the parent layer (with a network card when the
/// step may download), run it, keep the disk's changes as the step's layer.
extension TemplateBuilder {
    /// What the guest agent writes to /etc/resolv.conf in a machine with a network card,
    /// and what the built-in images hold instead (put back after a step, so that a
    /// template's disk does not keep the build machine's resolver).
    static let agentResolvConf = "nameserver \(MachineNIC.gatewayAddress)\noptions timeout:2 attempts:2\n"
    static let imageResolvConf = "# written by the omnirun agent when the sandbox has a network\n"

    /// Boots a build machine on `parent`, runs the step, keeps the disk's changes as `layer`.
    func runStep(
        _ step: BuildPlan.Step, parent: String, into layer: String, base: TemplateImage, request: Request, egress: BuildEgress,
        certificates: [UInt8]?, log: BuildLog, progress: @escaping @Sendable (Duration) -> StepProgress
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
        // Only steps that may download get a card (copies do not need one).
        let downloads: Bool
        switch step.action {
        case .run, .download: downloads = step.network
        case .copy, .copyFrom, .inline, .growFileSystem: downloads = false
        }
        let policy = downloads ? egress.policy : nil
        // Files of another template are read on the host before the machine boots.
        var fromArchive: (path: String, names: [String])?
        if case .copyFrom(let template, let rootfs, let sources, _, _, _) = step.action {
            let tar = work + "/from.tar"
            let names = try await ImageFiles.archive(image: rootfs, template: template, sources: sources, into: tar, scratch: work + "/from")
            fromArchive = (tar, names)
        }
        let machineName = "build-\(id)"
        let machine = try await runtime.bootBuildMachine(image: image, name: machineName, egress: policy)
        do {
            let agent = try await GuestAgentClient.connect(
                socketPath: machine.agentSocketPath, name: "template build \(request.settings.name)", timeout: .seconds(120),
                logger: logger, starvedFor: { machine.starvation() }, giveUpIf: { await machine.state.isTerminal ? "\(await machine.state)" : nil })
            do {
                // The certificates go to the machine's /run (a tmpfs: not part of the layer).
                var trust: [String: String] = [:]
                if policy != nil, let certificates {
                    _ = try await agent.writeFile(path: Self.certificatesPath, user: "root", mode: 0o644, bytes: certificates)
                    for name in Self.certificateVariables { trust[name] = Self.certificatesPath }
                }
                // The step's timeout is the agent's to enforce; the host's own deadline comes a
                // little later, whatever the build machine (whose root runs the Dockerfile) does.
                let stepEgress = policy == nil ? nil : egress
                let stepTrust = trust
                let stepArchive = fromArchive
                try await Self.within(configuration.stepTimeout + .seconds(120), what: "build step \(step.title)") {
                    try await self.execute(
                        step, agent: agent, contextPath: request.contextPath, fromArchive: stepArchive, egress: stepEgress,
                        trust: stepTrust, log: log, progress: progress)
                }
                if policy != nil { try await restoreResolvConf(agent) }
                try await agent.prepareSnapshot()  // sync: the disk holds everything the step wrote
            } catch {
                await agent.close()
                throw error
            }
            await agent.close()
            let saved = try await machine.snapshot(into: work + "/saved")
            try fm.moveItem(atPath: saved.diskFile, toPath: layer + ".tmp")
            try fm.moveItem(atPath: layer + ".tmp", toPath: layer)
        } catch {
            await machine.destroy()
            await runtime.releaseBuildMachine(machineName)
            throw error
        }
        await runtime.releaseBuildMachine(machineName)
    }

    private func execute(
        _ step: BuildPlan.Step, agent: GuestAgentClient, contextPath: String?, fromArchive: (path: String, names: [String])?,
        egress: BuildEgress?, trust: [String: String], log: BuildLog, progress: @escaping @Sendable (Duration) -> StepProgress
    ) async throws {
        let timeout = Int64(configuration.stepTimeout.components.seconds * 1000)
        func run(_ request: ProcessStartRequest) async throws {
            try await checked(agent, request, step: step, egress: egress, log: log, progress: progress)
        }
        switch step.action {
        case .growFileSystem:
            try await run(ProcessStartRequest(argv: ["/bin/sh", "-c", "resize2fs \"$(findmnt -no SOURCE /)\""], user: "root", timeoutMillis: timeout))
        case .run:
            if step.workdir != "/" {
                _ = try await agent.run(ProcessStartRequest(argv: ["mkdir", "-p", step.workdir], user: "root"))
            }
            // The Dockerfile's own values win over the trusted certificates' variables.
            try await run(
                ProcessStartRequest(
                    argv: step.runArgv, env: trust.merging(step.env) { _, own in own }, cwd: step.workdir, user: step.user,
                    timeoutMillis: timeout))
        case .copy(let sources, let destination, let chown, let chmod, let extract):
            guard let contextPath else { throw OmniRunError(.invalidArgument, "COPY needs a build context") }
            let staged = "/tmp/.omnirun-context.tar"
            _ = try await agent.writeFile(path: staged, user: "root", mode: 0o600, chunks: FileChunks(path: contextPath))
            let argv = ["/bin/bash", "-c", CopyScript.text, "copy", staged, destination, chown ?? "", chmod ?? "", extract ? "1" : "0", "1"]
            try await run(
                ProcessStartRequest(argv: argv + sources, env: ["DOCKERIGNORE": CopyScript.dockerignore], cwd: "/", user: "root", timeoutMillis: timeout))
        case .copyFrom(_, _, _, let destination, let chown, let chmod):
            guard let fromArchive else { throw OmniRunError(.internalError, "COPY --from without its files") }
            let staged = "/tmp/.omnirun-from.tar"
            _ = try await agent.writeFile(path: staged, user: "root", mode: 0o600, chunks: FileChunks(path: fromArchive.path))
            let argv = ["/bin/bash", "-c", CopyScript.text, "copy", staged, destination, chown ?? "", chmod ?? "", "0", "0"]
            try await run(ProcessStartRequest(argv: argv + fromArchive.names, cwd: "/", user: "root", timeoutMillis: timeout))
        case .inline(let files, let destination, let chown, let chmod):
            for (index, file) in files.enumerated() {
                let staged = "/tmp/.omnirun-inline-\(index)"
                _ = try await agent.writeFile(path: staged, user: "root", mode: 0o600, bytes: Array(file.content.utf8))
                let target = destination.hasSuffix("/") ? destination + file.name : destination
                try await run(
                    ProcessStartRequest(
                        argv: ["/bin/sh", "-c", Self.installScript, "inline", staged, target, chown ?? "", chmod ?? ""], cwd: "/", user: "root",
                        timeoutMillis: timeout))
            }
        case .download(let url, let destination, let chown, let chmod):
            let script = #"""
                set -eu
                url=$1 dest=$2
                case "$dest" in */) name=${url%%[?#]*}; name=${name##*/}; dest="$dest${name:-index.html}" ;; esac
                tmp=$(mktemp /tmp/.omnirun-download.XXXXXX)
                curl -fsSL --retry 3 --connect-timeout 30 -o "$tmp" "$url"
                exec "$0" "$tmp" "$dest" "$3" "$4"
                """#
            // The download, then the same install as a here-document (owner, mode, folders).
            let installer = "/tmp/.omnirun-install"
            _ = try await agent.writeFile(path: installer, user: "root", mode: 0o700, bytes: Array(("#!/bin/sh\n" + Self.installScript).utf8))
            try await run(
                ProcessStartRequest(
                    argv: ["/bin/sh", "-c", script, installer, url, destination, chown ?? "", chmod ?? ""], env: trust, cwd: "/",
                    user: "root", timeoutMillis: timeout))
            _ = try await agent.run(ProcessStartRequest(argv: ["rm", "-f", installer], user: "root"))
        }
    }

    /// Where a step with a network finds the trusted certificates, and the variables that
    /// point the usual tools there (OpenSSL and Python, pip, curl, Node and npm, git).
    static let certificatesPath = "/run/omnirun-build-ca.pem"
    static let certificateVariables = [
        "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO",
    ]

    /// Moves a staged file into place: `$1` staged, `$2` target, `$3` owner (default
    /// root), `$4` mode (default 0644); the target's folders are made as needed.
    static let installScript = #"""
        set -eu
        mkdir -p "$(dirname "$2")"
        mv -f "$1" "$2"
        chown "${3:-0:0}" "$2"
        chmod "${4:-0644}" "$2"
        echo "wrote $2"
        """#

    /// Puts the image's /etc/resolv.conf back where the agent wrote the build machine's.
    private func restoreResolvConf(_ agent: GuestAgentClient) async throws {
        let script = "[ \"$(cat /etc/resolv.conf 2>/dev/null; echo x)\" = \"$1x\" ] && printf '%s' \"$2\" > /etc/resolv.conf || true"
        _ = try await agent.run(
            ProcessStartRequest(argv: ["/bin/sh", "-c", script, "resolv", Self.agentResolvConf, Self.imageResolvConf], user: "root"))
    }

    /// Runs a step's process with its output in the log (and a line when it stays quiet);
    /// a non-zero exit fails the build with the step's line.
    private func checked(
        _ agent: GuestAgentClient, _ request: ProcessStartRequest, step: BuildPlan.Step, egress: BuildEgress?, log: BuildLog,
        progress: @escaping @Sendable (Duration) -> StepProgress
    ) async throws {
        let collector = StepOutput(log: log)
        let started = ContinuousClock.now
        let notice = configuration.quietStepNotice
        let watcher = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(5))
                if Task.isCancelled { break }
                if collector.quietFor >= notice, collector.end == nil {
                    log.step(progress(ContinuousClock.now - started))
                    collector.noted()
                }
            }
        }
        defer { watcher.cancel() }
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
            var network = ""
            if let egress, egress != .open {
                network = "\n(this build's network is \(egress.summary): OMNIRUN_BUILD_EGRESS on the server)"
            } else if egress == nil, step.network, case .run = step.action {
                network = "\n(this step had no network card)"
            }
            throw OmniRunError(
                .invalidArgument,
                "build step failed (\(what)) with exit code \(exitCode)\(failure.map { " (\($0))" } ?? "")\n\(tail)\(network)")
        }
    }

    func flatten(_ layer: String, into output: String) async throws {
        let tmp = output + ".tmp"
        try? FileManager.default.removeItem(atPath: tmp)
        let result = try await HostTool.run([configuration.qemuImg, "convert", "-q", "-O", "raw", layer, tmp])
        guard result.status == 0 else {
            try? FileManager.default.removeItem(atPath: tmp)
            throw OmniRunError(.internalError, "flattening the template image failed: \(result.stderr)")
        }
        try FileManager.default.moveItem(atPath: tmp, toPath: output)
    }

    /// Runs `body`, failing with `.timeout` (and cancelling it) once `limit` has passed.
    static func within<T: Sendable>(
        _ limit: Duration, what: String, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let result = try await group.next() ?? nil else {
                throw OmniRunError(.timeout, "\(what) did not finish within \(limit)")
            }
            return result
        }
    }
}
