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
    /// Who QEMU runs as (nil: the server's own user) and the VMMs' cgroups.
    public let identity: VMMIdentity?
    public let cgroups: VMMCgroups
    let sealedMemory = SealedMemory()
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
        self.identity = try VMMIdentity.resolve(configuration.user, logger: logger)
        self.cgroups = VMMCgroups.detect(enabled: configuration.cgroups, logger: logger)
        if !configuration.seccomp {
            logger.warning("QEMU runs without its seccomp filter (OMNIRUN_QEMU_SECCOMP=0)")
        }
        self.accelerator = AcceleratorProbe.decide(configuration.accelerator, logger: logger)
        self.tscKHz = HostTSC.kilohertz()
        if accelerator == .kvm, let identity, !Self.canOpenKVM(identity) {
            throw OmniRunError(
                .unavailable,
                "QEMU's user \(identity.user) cannot open /dev/kvm: give it the device's group (usermod -aG kvm \(identity.user)) or set OMNIRUN_ACCEL=tcg")
        }
    }

    public var description: String { "qemu-microvm/\(accelerator.rawValue)" }

    /// Whether `identity` may read and write /dev/kvm (by the device's mode bits).
    static func canOpenKVM(_ identity: VMMIdentity) -> Bool {
        var info = stat()
        guard stat("/dev/kvm", &info) == 0 else { return false }
        if info.st_uid == identity.uid { return info.st_mode & 0o600 == 0o600 }
        if identity.groups.contains(info.st_gid) || info.st_gid == identity.gid { return info.st_mode & 0o060 == 0o060 }
        return info.st_mode & 0o006 == 0o006
    }

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
        let format = image.rootfs.hasSuffix(".qcow2") ? "qcow2" : "raw"
        try await createOverlay(backing: image.rootfs, backingFormat: format, at: disk)
        let chain = try DiskChain.below(backingName: image.rootfs, format: format, in: options.directory, trusting: layerOwner)
        var memory = MemorySource.none
        if snapshotable {
            let path = options.directory + "/memory.raw"
            guard fm.createFile(atPath: path, contents: nil) else {
                throw OmniRunError(.internalError, "cannot create \(path)")
            }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.truncate(atOffset: UInt64(image.memoryMB) << 20)
            try handle.close()
            try identity.own(path)
            memory = .shared("memory.raw", path: path)
        }
        return try launch(options: options, image: image, chain: chain, memory: memory, stdin: nil)
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
        if configuration.restoreShortcuts, let overlay = RestoreShortcuts.overlay(backing: snapshot.diskFile, format: "qcow2") {
            try RestoreShortcuts.write(overlay, to: disk)
        } else {
            try await createOverlay(backing: snapshot.diskFile, backingFormat: "qcow2", at: disk)
            if configuration.restoreShortcuts { RestoreShortcuts.remember(overlay: disk, backing: snapshot.diskFile, format: "qcow2") }
        }
        let overlayReady = ContinuousClock.now
        guard let state = FileHandle(forReadingAtPath: snapshot.deviceStateFile) else {
            throw OmniRunError(.notFound, "snapshot device state missing: \(snapshot.deviceStateFile)")
        }
        let image = snapshot.image
        let chain = try DiskChain.below(backingName: snapshot.diskFile, format: "qcow2", in: options.directory, trusting: layerOwner)
        defer { try? state.close() }
        let machine = try launch(
            options: options, image: image, chain: chain, memory: .sealedCopy(of: snapshot.memoryFile), stdin: state)
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

    public func attach(image: MachineImage, options: MachineOptions, pid: Int32) async throws -> any MachineInstance {
        // The pid must still be the VMM of that directory (pids are reused). Its command
        // line names the folder (`-name guest=…`; older servers' VMMs: the agent socket).
        guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
            MachineProcessMarker.matches(Array(cmdline), directory: options.directory)
        else {
            // Its VMM ended while no server watched it: its group goes too.
            cgroups.remove(machine: options.name, directory: options.directory)
            throw OmniRunError(.notFound, "machine \(options.name) (pid \(pid)) is not running")
        }
        let machine = QEMUMachine(
            name: options.name, directory: options.directory, ownChild: false, pid: pid, accelerator: accelerator,
            image: image, memoryFile: nil, confinement: confinement(for: options, chain: DiskChain.read(from: options.directory)),
            group: group, logger: logger)
        machine.markStarted()
        machine.monitorDetached()
        machine.limitConsole()
        return machine
    }

    /// A copy-on-write disk for one machine on top of a read-only backing file.
    /// A relative `backing` is resolved from `directory` (the overlay's own folder).
    func createOverlay(backing: String, backingFormat: String, at path: String, in directory: String? = nil) async throws {
        try await runQEMUImg(["create", "-q", "-f", "qcow2", "-b", backing, "-F", backingFormat, path], in: directory)
    }

    /// Runs `qemu-img` with `arguments` (in `directory`, if given); its error output becomes the error.
    func runQEMUImg(_ arguments: [String], in directory: String? = nil) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: configuration.qemuImgBinary)
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw OmniRunError(.machineFailed, "qemu-img \(arguments.first ?? "") failed: \(message.prefix(2000))")
        }
    }
}
