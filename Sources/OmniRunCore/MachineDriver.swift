import OmniRunError

/// What a machine is made of: a kernel, an initramfs holding the agent, a root
/// disk, and its size.
public struct MachineImage: Sendable, Codable, Equatable {
    public var template: String
    public var kernel: String
    public var initrd: String
    public var rootfs: String
    public var vcpus: Int
    public var memoryMB: Int
    public var diskMB: Int?
    /// Hash of every input that built the image.
    public var key: String

    public init(
        template: String, kernel: String, initrd: String, rootfs: String, vcpus: Int, memoryMB: Int, diskMB: Int?,
        key: String
    ) {
        self.template = template
        self.kernel = kernel
        self.initrd = initrd
        self.rootfs = rootfs
        self.vcpus = vcpus
        self.memoryMB = memoryMB
        self.diskMB = diskMB
        self.key = key
    }
}

/// A saved machine: memory file, device state and the frozen disk, all read-only
/// once written. Every restore maps the memory copy-on-write over a fresh overlay.
public struct MachineSnapshot: Sendable, Codable, Equatable {
    public var image: MachineImage
    public var directory: String
    public var memoryFile: String
    public var deviceStateFile: String
    public var diskFile: String
    /// Which accelerator the snapshot was taken under (restore must match).
    public var accelerator: String
    public var createdAtMillis: Int64
    /// Whether the machine has a network card (restores must attach one; nil: none).
    public var hasNIC: Bool?

    public init(
        image: MachineImage, directory: String, memoryFile: String, deviceStateFile: String, diskFile: String,
        accelerator: String, createdAtMillis: Int64, hasNIC: Bool? = nil
    ) {
        self.image = image
        self.directory = directory
        self.memoryFile = memoryFile
        self.deviceStateFile = deviceStateFile
        self.diskFile = diskFile
        self.accelerator = accelerator
        self.createdAtMillis = createdAtMillis
        self.hasNIC = hasNIC
    }
}

/// A machine's network card and where its traffic goes.
public enum MachineNIC: Sendable, Equatable {
    /// A card connected to nothing (a template's snapshot boot: the card must exist
    /// for restores to attach one, but the template itself needs no network).
    case unconnected
    /// A TAP device in a network namespace (`/run/netns/<namespace>`); the VMM runs
    /// inside that namespace.
    case tap(namespace: String, device: String)

    /// Every guest with a card has the same interface (each lives in its own
    /// namespace, so one snapshot serves all): this address, prefix and gateway, which
    /// is also its DNS server. The guest reads them from its kernel command line.
    public static let guestAddress = "10.0.2.15"
    public static let guestPrefix = 24
    public static let gatewayAddress = "10.0.2.2"
    /// The kernel command line word that carries them (`omnirun.ip=10.0.2.15/24:10.0.2.2`).
    public static var kernelArgument: String { "omnirun.ip=\(guestAddress)/\(guestPrefix):\(gatewayAddress)" }
}

/// A machine saved whole by `MachineInstance.pause(into:)`: its memory and device
/// state in one file, its own disk (an overlay on the template's) beside it. The
/// machine's folder holds everything; `resume` brings the machine back from it.
public struct PausedMachine: Sendable, Codable, Equatable {
    public var image: MachineImage
    public var directory: String
    /// The migration stream: every non-zero page of guest memory and the device state.
    public var stateFile: String
    public var diskFile: String
    public var accelerator: String
    public var pausedAtMillis: Int64
    /// Whether the machine had a network card (a resume must give it one again).
    public var hasNIC: Bool?

    public init(
        image: MachineImage, directory: String, stateFile: String, diskFile: String, accelerator: String, pausedAtMillis: Int64,
        hasNIC: Bool? = nil
    ) {
        self.hasNIC = hasNIC
        self.image = image
        self.directory = directory
        self.stateFile = stateFile
        self.diskFile = diskFile
        self.accelerator = accelerator
        self.pausedAtMillis = pausedAtMillis
    }

    /// Where a paused machine describes itself inside its folder.
    public static func manifestPath(in directory: String) -> String { directory + "/paused.json" }
}

/// Per-machine options for one boot or restore.
public struct MachineOptions: Sendable {
    /// Name used in logs, paths and errors (the sandbox id).
    public var name: String
    /// Working directory for the machine's own files (sockets, overlay, log).
    public var directory: String
    /// The network card (nil: none at all, a true air gap).
    public var nic: MachineNIC?

    public init(name: String, directory: String, nic: MachineNIC? = nil) {
        self.name = name
        self.directory = directory
        self.nic = nic
    }
}

/// A virtual machine monitor backend (QEMU today; Firecracker or Cloud Hypervisor
/// where they exist).
public protocol MachineDriver: Sendable {
    /// Boots an image from scratch; `snapshotable` keeps its memory in a file so the
    /// machine can be saved with `snapshot(into:)`.
    func boot(image: MachineImage, options: MachineOptions, snapshotable: Bool) async throws -> any MachineInstance
    /// Starts a new machine from a snapshot (memory copy-on-write, fresh disk overlay).
    func restore(snapshot: MachineSnapshot, options: MachineOptions) async throws -> any MachineInstance
    /// Brings a paused machine back exactly as it was saved (memory, devices, disk).
    func resume(_ paused: PausedMachine, options: MachineOptions) async throws -> any MachineInstance
    /// Copies of a paused machine for `resume`, one per directory: the paused disk is
    /// frozen under the machine's own new overlay and each copy's; all share its saved state.
    func fork(_ paused: PausedMachine, into directories: [String]) async throws -> [PausedMachine]
    /// Writes the whole disk of a paused machine (its overlay and every layer below) to `disk`
    /// as one file that needs nothing else, for another node.
    func exportDisk(of paused: PausedMachine, to disk: String) async throws
    /// Takes a paused machine from another node into `directory`: its saved state is at
    /// `paused.stateFile` there already, `disk` is what `exportDisk` wrote; returns the paused
    /// machine as this node resumes it.
    func importPaused(_ paused: PausedMachine, disk: String, into directory: String) async throws -> PausedMachine
    /// Takes over a machine started by an earlier process of this server (after a
    /// restart). Fails if `pid` is not that machine's VMM.
    func attach(image: MachineImage, options: MachineOptions, pid: Int32) async throws -> any MachineInstance
    /// A short description for logs and benchmarks ("qemu-microvm/tcg").
    var description: String { get }
    /// Changes whenever snapshots taken by this driver can no longer be restored by
    /// it (another VMM build, another accelerator).
    var snapshotCompatibilityKey: String { get }
}

/// One running machine.
public protocol MachineInstance: AnyObject, Sendable {
    var name: String { get }
    /// The VMM's process id (recorded so that a restarted server can re-attach).
    var processID: Int32 { get }
    /// The machine's own directory.
    var directory: String { get }
    /// The host end of the agent channel (a Unix socket).
    var agentSocketPath: String { get }
    var state: MachineState { get async }
    /// Saves memory, device state and disk into `directory` and stops the machine.
    func snapshot(into directory: String) async throws -> MachineSnapshot
    /// Saves the whole machine (memory, device state; its disk stays in place) into
    /// its own folder and stops its VMM; the folder is kept for `resume`.
    func pause() async throws -> PausedMachine
    /// Stops the VMM at once and keeps the machine's folder (a failed resume must not
    /// lose the paused state).
    func stopKeepingFiles() async
    /// Stops the machine and removes every file it owned. Idempotent.
    func destroy() async
    /// Resolves when the machine has stopped, for whatever reason.
    func waitForExit() async -> MachineExit
    /// The tail of the guest's console, for error reports.
    func consoleTail(maxBytes: Int) async -> String
    /// Scheduling niceness of the machine's threads (higher yields to others).
    func setPriority(_ niceness: Int32)
    /// Freezes the guest's CPUs; the process and its memory stay (no CPU used).
    func stopCPUs() async throws
    /// Lets frozen CPUs run again.
    func continueCPUs() async throws
    /// What the VMM says about a machine that stopped answering (run state, CPU
    /// registers), for error reports; empty when it cannot say.
    func diagnostics() async -> String

    /// How long the machine's busiest thread has waited for a host CPU since it
    /// started: an overloaded host's doing, not the guest's.
    func starvation() -> Duration
}

extension MachineDriver {
    public func fork(_ paused: PausedMachine, into directories: [String]) async throws -> [PausedMachine] {
        throw OmniRunError(.unsupported, "\(description) cannot fork machines")
    }
}

extension MachineInstance {
    public func diagnostics() async -> String { "" }
    public func starvation() -> Duration { .zero }
}
