import Foundation
import OmniRunCore
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Where a VMM's RAM comes from.
enum MemorySource {
    /// Anonymous RAM that the incoming migration fills (a resume).
    case anonymous
    /// QEMU's default RAM (a plain boot).
    case none
    /// A file in the machine's folder, shared, so the machine can be snapshotted (its
    /// name relative to the folder, and its full path).
    case shared(String, path: String)
    /// A snapshot's memory, private copy-on-write over its sealed copy.
    case sealedCopy(of: String)
}

/// What a running machine needs to know of how it was confined.
struct MachineConfinement: Sendable {
    var identity: VMMIdentity?
    /// The layers under the machine's overlay (nil: unknown, a machine of an older server).
    var chain: DiskChain?
    /// Removes the machine's cgroup (once its VMM has gone).
    var removeCgroup: @Sendable () -> Void
    var consoleLimit: Int
}

extension QEMUDriver {
    /// Whose read-only files disk layers must be (nil: QEMU runs as the server, no check).
    var layerOwner: uid_t? { identity == nil ? nil : geteuid() }

    func confinement(for options: MachineOptions, chain: DiskChain?) -> MachineConfinement {
        let cgroups = self.cgroups
        let name = options.name
        let directory = options.directory
        return MachineConfinement(
            identity: identity, chain: chain, removeCgroup: { cgroups.remove(machine: name, directory: directory) },
            consoleLimit: configuration.consoleLogBytes)
    }

    /// A VMM's `memory.max`: the guest's RAM, QEMU's own, and TCG's translation cache.
    func memoryLimitBytes(guestMB: Int) -> Int64 {
        let overhead = configuration.memoryOverheadMB ?? (256 + (accelerator == .tcg ? configuration.tcgTranslationCacheMB ?? 1024 : 0))
        return Int64(guestMB + overhead) << 20
    }

    /// A VMM's `pids.max`.
    func pidsLimit(vcpus: Int) -> Int {
        configuration.pidsMax ?? 128 + 2 * max(vcpus, 1)
    }

    /// Starts QEMU for a machine whose folder holds its overlay `disk.qcow2` on `chain`.
    /// Everything it needs from outside the folder is opened here and passed down; the
    /// folder's files it writes are given to its user; then it is spawned confined.
    func launch(
        options: MachineOptions, image: MachineImage, chain: DiskChain, memory: MemorySource, stdin: FileHandle?
    ) throws -> QEMUMachine {
        let started = ContinuousClock.now
        let directory = options.directory
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        func openForQEMU(_ path: String) throws -> Int32 {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw OmniRunError(.notFound, "cannot open \(path) for QEMU: errno \(errno)") }
            opened.append(fd)
            return fd
        }
        let logPath = directory + "/qemu.log"
        // Appended to, so that the server can cut it like the console (a guest can make
        // QEMU print warnings over and over).
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard log >= 0 else { throw OmniRunError(.machineFailed, "cannot create \(logPath): errno \(errno)") }
        opened.append(log)
        let nullInput = try openForQEMU("/dev/null")
        var launch = VMMLaunch(
            executable: configuration.qemuBinary, arguments: [], standardInput: stdin?.fileDescriptor ?? nullInput,
            standardOutput: log, identity: identity, directory: directory)
        launch.noHugePages = !configuration.transparentHugePages
        // The kernel and initramfs are world-readable files in folders QEMU may not enter.
        // A machine whose state arrives by migration (a restore, a resume) is booted
        // already: its kernel's header is enough (`RestoreShortcuts`).
        var kernelFD: Int32? = nil
        if stdin != nil, configuration.restoreShortcuts, let header = try RestoreShortcuts.kernelHeader(of: image.kernel) {
            opened.append(header)
            kernelFD = header
        }
        let kernel = "/proc/self/fd/\(launch.pass(try kernelFD ?? openForQEMU(image.kernel)))"
        let initrd = "/proc/self/fd/\(launch.pass(try openForQEMU(image.initrd)))"
        var fdSets: [(fd: Int, set: Int)] = []
        var layers: [(fdset: Int, format: String)] = []
        for (index, layer) in chain.layers.enumerated() {
            let number = launch.pass(try openForQEMU(layer.path))
            fdSets.append((number, index + 1))
            layers.append((index + 1, layer.format))
        }
        let agent = try Self.listen(at: MachineSockets.path(directory, "agent.sock"))
        opened.append(agent)
        let qmp = try Self.listen(at: MachineSockets.path(directory, "qmp.sock"))
        opened.append(qmp)
        let agentNumber = launch.pass(agent)
        let qmpNumber = launch.pass(qmp)
        var memoryPath: String? = nil
        var shareMemory = false
        switch memory {
        case .none, .anonymous: break
        case .shared(let name, _):
            memoryPath = name
            shareMemory = true
        case .sealedCopy(let file):
            let started = ContinuousClock.now
            let fd = try sealedMemory.descriptor(for: file)
            opened.append(fd)
            if ContinuousClock.now - started > .milliseconds(50) {
                logger.info(
                    "snapshot memory copied and sealed", metadata: ["file": "\(file)", "took": "\(ContinuousClock.now - started)"])
            }
            memoryPath = "/proc/self/fd/\(launch.pass(fd))"
        }
        // The folder's files QEMU writes: its overlay and its console.
        try identity.own(directory + "/disk.qcow2")
        let console = directory + "/console.log"
        if !FileManager.default.fileExists(atPath: console) {
            _ = FileManager.default.createFile(atPath: console, contents: nil)
        }
        try identity.own(console)
        var tapFD: Int? = nil
        if case .tap(let namespace, let device) = options.nic {
            // The VMM runs inside the sandbox's network namespace, on its TAP device.
            launch.networkNamespace = namespace
            tapFD = launch.attachTAP(device)
        }
        var commandLine = QEMUCommandLine(
            accelerator: accelerator, tscKHz: tscKHz, memoryMB: image.memoryMB, vcpus: image.vcpus, directory: directory,
            kernel: kernel, initrd: initrd, diskLayers: layers, agentSocketFD: agentNumber, qmpSocketFD: qmpNumber,
            memoryFile: memoryPath, shareMemory: shareMemory, anonymousMemory: memory.isAnonymous, incoming: stdin != nil,
            seccomp: configuration.seccomp, fdSets: fdSets, extraKernelArguments: kernelArguments, tcgCPU: configuration.tcgCPU,
            tcgTranslationCacheMB: configuration.tcgTranslationCacheMB, nic: options.nic)
        commandLine.tapFD = tapFD
        launch.arguments = commandLine.arguments
        launch.cgroup = try cgroups.create(
            machine: options.name, directory: directory, memoryBytes: memoryLimitBytes(guestMB: image.memoryMB),
            pidsMax: pidsLimit(vcpus: image.vcpus))
        try chain.write(into: directory)
        let confinement = confinement(for: options, chain: chain)
        let pid: Int32
        do {
            pid = try launch.spawn()
        } catch {
            confinement.removeCgroup()
            throw OmniRunError(.machineFailed, "cannot start QEMU for \(options.name): \(error)")
        }
        let memoryFile: String? = if case .shared(_, let path) = memory { path } else { nil }
        let machine = QEMUMachine(
            name: options.name, directory: directory, ownChild: true, pid: pid, accelerator: accelerator, image: image,
            memoryFile: memoryFile, hasNIC: options.nic != nil, confinement: confinement, group: group, logger: logger)
        ChildReaper.watch(pid) { [weak machine] status, signalled in
            confinement.removeCgroup()
            machine?.processExited(status: status, reason: signalled ? .uncaughtSignal : .exit)
        }
        machine.markStarted()
        machine.limitConsole()
        logger.debug(
            "machine started",
            metadata: [
                "machine": "\(options.name)", "pid": "\(pid)", "restore": "\(stdin != nil)",
                "prepared": "\(ContinuousClock.now - started)",
                "user": "\(identity?.user ?? "(the server's)")",
            ])
        return machine
    }

    /// A listening Unix socket for QEMU (it accepts on it; the server connects by path).
    static func listen(at path: String) throws -> Int32 {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw OmniRunError(.internalError, "cannot make a socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw OmniRunError(.internalError, "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o600) == 0, Glibc.listen(fd, 16) == 0 else {
            let error = errno
            close(fd)
            throw OmniRunError(.internalError, "cannot listen on \(path): errno \(error)")
        }
        return fd
    }
}

extension MemorySource {
    var isAnonymous: Bool { if case .anonymous = self { true } else { false } }
}
