import Foundation
import Logging
import NIOCore
import NIOPosix
import OmniRunCore
import OmniRunError

/// Runs machines as QEMU `microvm` processes.
public struct QEMUDriver: MachineDriver {
    public let configuration: QEMUConfiguration
    public let accelerator: Accelerator
    public let tscKHz: Int?
    let group: any EventLoopGroup
    let logger: Logger

    public init(
        configuration: QEMUConfiguration = .init(), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "omnirun.qemu")
    ) throws {
        guard FileManager.default.isExecutableFile(atPath: configuration.qemuBinary) else {
            throw OmniRunError(.unavailable, "QEMU not found at \(configuration.qemuBinary) (install qemu-system-x86)")
        }
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.accelerator = AcceleratorProbe.decide(configuration.accelerator, logger: logger)
        self.tscKHz = HostTSC.kilohertz()
    }

    public var description: String { "qemu-microvm/\(accelerator.rawValue)" }

    /// Kernel arguments beyond the fixed ones (a snapshot's boot and its restores agree).
    var kernelArguments: [String] {
        let aslr = configuration.guestASLR ?? (accelerator == .kvm)
        return (aslr ? [] : ["norandmaps"]) + configuration.extraKernelArguments
    }

    public var snapshotCompatibilityKey: String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: configuration.qemuBinary)
        let size = (attributes?[.size] as? NSNumber)?.int64Value ?? 0
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "qemu:\(size):\(Int64(modified)):\(accelerator.rawValue):cpu=\(configuration.tcgCPU):tsc=\(tscKHz ?? 0):args=\(kernelArguments.joined(separator: ","))"
    }

    public func boot(image: MachineImage, options: MachineOptions, snapshotable: Bool) async throws -> any MachineInstance {
        let fm = FileManager.default
        try fm.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
        let disk = options.directory + "/disk.qcow2"
        // A template build boots from a qcow2 layer; built images are raw.
        try await createOverlay(backing: image.rootfs, backingFormat: image.rootfs.hasSuffix(".qcow2") ? "qcow2" : "raw", at: disk)
        var memoryFile: String? = nil
        if snapshotable {
            let path = options.directory + "/memory.raw"
            guard fm.createFile(atPath: path, contents: nil) else {
                throw OmniRunError(.internalError, "cannot create \(path)")
            }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.truncate(atOffset: UInt64(image.memoryMB) << 20)
            try handle.close()
            memoryFile = path
        }
        let commandLine = QEMUCommandLine(
            accelerator: accelerator, tscKHz: tscKHz, memoryMB: image.memoryMB, vcpus: image.vcpus, kernel: image.kernel,
            initrd: image.initrd, disk: disk, agentSocket: MachineSockets.path(options.directory, "agent.sock"),
            qmpSocket: MachineSockets.path(options.directory, "qmp.sock"), serialLog: options.directory + "/console.log",
            memoryFile: memoryFile, shareMemory: true, incoming: false, seccomp: configuration.seccomp,
            allowSpawn: snapshotable, runAs: nil, extraKernelArguments: kernelArguments,
            tcgCPU: configuration.tcgCPU, tcgTranslationCacheMB: configuration.tcgTranslationCacheMB, nic: options.nic)
        return try launch(
            commandLine, options: options, image: image, memoryFile: memoryFile, stdin: nil)
    }

    public func restore(snapshot: MachineSnapshot, options: MachineOptions) async throws -> any MachineInstance {
        guard snapshot.accelerator == accelerator.rawValue else {
            throw OmniRunError(
                .conflict, "snapshot was taken under \(snapshot.accelerator), this host runs \(accelerator.rawValue)")
        }
        guard (snapshot.hasNIC ?? false) == (options.nic != nil) else {
            throw OmniRunError(
                .conflict, "the snapshot \(snapshot.hasNIC == true ? "has" : "has no") network card, the restore asks for the opposite")
        }
        let started = ContinuousClock.now
        let fm = FileManager.default
        try fm.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
        let disk = options.directory + "/disk.qcow2"
        try await createOverlay(backing: snapshot.diskFile, backingFormat: "qcow2", at: disk)
        let overlayReady = ContinuousClock.now
        guard let state = FileHandle(forReadingAtPath: snapshot.deviceStateFile) else {
            throw OmniRunError(.notFound, "snapshot device state missing: \(snapshot.deviceStateFile)")
        }
        let image = snapshot.image
        let commandLine = QEMUCommandLine(
            accelerator: accelerator, tscKHz: tscKHz, memoryMB: image.memoryMB, vcpus: image.vcpus, kernel: image.kernel,
            initrd: image.initrd, disk: disk, agentSocket: MachineSockets.path(options.directory, "agent.sock"),
            qmpSocket: MachineSockets.path(options.directory, "qmp.sock"), serialLog: options.directory + "/console.log",
            memoryFile: snapshot.memoryFile, shareMemory: false, incoming: true, seccomp: configuration.seccomp,
            allowSpawn: false, runAs: configuration.runAs, extraKernelArguments: kernelArguments,
            tcgCPU: configuration.tcgCPU, tcgTranslationCacheMB: configuration.tcgTranslationCacheMB, nic: options.nic)
        defer { try? state.close() }
        let machine = try launch(commandLine, options: options, image: image, memoryFile: nil, stdin: state)
        do {
            // RAM is the snapshot's file mapped copy-on-write; only device state streams in.
            // `cont` during an incoming migration means "run as soon as it completes".
            let qmp = try await machine.qmp()
            let qmpReady = ContinuousClock.now
            defer {
                logger.debug(
                    "machine restored",
                    metadata: [
                        "machine": "\(options.name)", "overlay": "\(overlayReady - started)",
                        "qmp": "\(qmpReady - overlayReady)", "migration": "\(ContinuousClock.now - qmpReady)",
                    ])
            }
            try await qmp.execute(
                "migrate-set-capabilities", arguments: #"{"capabilities":[{"capability":"x-ignore-shared","state":true}]}"#)
            try await qmp.execute("migrate-incoming", arguments: #"{"uri":"fd:0"}"#)
            try await qmp.execute("cont")
        } catch {
            try? await Task.sleep(for: .milliseconds(50))
            let diagnostics = await machine.consoleTail(maxBytes: 2000)
            await machine.destroy()
            throw OmniRunError(.machineFailed, "restoring \(options.name) failed: \(error)\n\(diagnostics)")
        }
        return machine
    }

    func launch(
        _ commandLine: QEMUCommandLine, options: MachineOptions, image: MachineImage, memoryFile: String?,
        stdin: FileHandle?
    ) throws -> QEMUMachine {
        let process = Process()
        if case .tap(let namespace, _) = commandLine.nic {
            // The VMM runs inside the sandbox's network namespace, where its TAP device is
            // (nsenter execs QEMU in place: the pid stays the VMM's).
            process.executableURL = URL(fileURLWithPath: configuration.nsenterBinary)
            process.arguments = ["--net=/run/netns/\(namespace)", "--", configuration.qemuBinary] + commandLine.arguments
        } else {
            process.executableURL = URL(fileURLWithPath: configuration.qemuBinary)
            process.arguments = commandLine.arguments
        }
        process.currentDirectoryURL = URL(fileURLWithPath: options.directory)
        let logPath = options.directory + "/qemu.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = stdin ?? FileHandle.nullDevice
        process.terminationHandler = nil
        do {
            try process.run()
        } catch {
            try? log.close()
            throw OmniRunError(.machineFailed, "cannot start QEMU for \(options.name): \(error)")
        }
        try? log.close()
        let machine = QEMUMachine(
            name: options.name, directory: options.directory, process: process, pid: process.processIdentifier,
            accelerator: accelerator, image: image, memoryFile: memoryFile, hasNIC: commandLine.nic != nil,
            group: group, logger: logger)
        process.terminationHandler = { [weak machine] finished in
            machine?.processExited(status: finished.terminationStatus, reason: finished.terminationReason)
        }
        if !process.isRunning {
            machine.processExited(status: process.terminationStatus, reason: process.terminationReason)
        }
        machine.markStarted()
        machine.watchForMissedExit()
        logger.debug(
            "machine started",
            metadata: ["machine": "\(options.name)", "pid": "\(process.processIdentifier)", "restore": "\(stdin != nil)"])
        return machine
    }

    public func attach(image: MachineImage, options: MachineOptions, pid: Int32) async throws -> any MachineInstance {
        // The pid must still be the VMM of that directory (pids are reused).
        guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
            String(decoding: cmdline, as: UTF8.self).contains(MachineSockets.path(options.directory, "agent.sock"))
        else {
            throw OmniRunError(.notFound, "machine \(options.name) (pid \(pid)) is not running")
        }
        let machine = QEMUMachine(
            name: options.name, directory: options.directory, process: nil, pid: pid, accelerator: accelerator,
            image: image, memoryFile: nil, group: group, logger: logger)
        machine.markStarted()
        machine.monitorDetached()
        return machine
    }

    /// A copy-on-write disk for one machine on top of a read-only backing file.
    /// A relative `backing` is resolved from `directory` (the overlay's own folder).
    func createOverlay(backing: String, backingFormat: String, at path: String, in directory: String? = nil) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: configuration.qemuImgBinary)
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.arguments = ["create", "-q", "-f", "qcow2", "-b", backing, "-F", backingFormat, path]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw OmniRunError(.machineFailed, "qemu-img create failed: \(message)")
        }
    }
}
