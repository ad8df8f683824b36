/// Settings of the QEMU backend. Each is read from the environment by the CLI
/// (`OMNIRUN_QEMU`, `OMNIRUN_QEMU_IMG`, `OMNIRUN_ACCEL`, `OMNIRUN_QEMU_SECCOMP`,
/// `OMNIRUN_QEMU_USER`, `OMNIRUN_QEMU_CGROUPS`, `OMNIRUN_QEMU_MEMORY_OVERHEAD_MB`,
/// `OMNIRUN_QEMU_PIDS_MAX`, `OMNIRUN_CONSOLE_LOG_KB`).
public struct QEMUConfiguration: Sendable {
    public var qemuBinary: String = "/usr/bin/qemu-system-x86_64"
    public var qemuImgBinary: String = "/usr/bin/qemu-img"
    /// `auto` probes KVM's speed once and falls back to TCG.
    public var accelerator: AcceleratorChoice = .auto
    /// Runs QEMU under its seccomp filter (`-sandbox on,obsolete=deny,elevateprivileges=deny,
    /// spawn=deny,resourcecontrol=deny`; `OMNIRUN_QEMU_SECCOMP=0` turns it off, for debugging).
    public var seccomp: Bool = true
    /// The unprivileged user every VMM runs as when the server is root (nil:
    /// `omnirun-qemu`; `root` keeps root, logged as a warning).
    public var user: String? = nil
    /// A cgroup per VMM with `memory.max` and `pids.max` (`OMNIRUN_QEMU_CGROUPS=off`: none).
    public var cgroups: Bool = true
    /// A VMM's `memory.max` beyond its guest's RAM, in MiB (nil: 256, plus the TCG
    /// translation cache under TCG: `OMNIRUN_TCG_TB_MB` or QEMU's 1024).
    public var memoryOverheadMB: Int? = nil
    /// A VMM's `pids.max` (nil: 128 + 2 per vCPU; QEMU needs a thread per vCPU and a pool of I/O threads).
    public var pidsMax: Int? = nil
    /// The guest console's log is cut to its last half once it passes this size.
    public var consoleLogBytes: Int = 4 << 20
    /// How long a cold boot may take before the machine is declared failed.
    public var bootTimeout: Duration = .seconds(90)
    public var extraKernelArguments: [String] = []
    /// Address-space randomisation inside the guest (`OMNIRUN_GUEST_ASLR`; nil: on under
    /// KVM, off under TCG). QEMU 7.2's translator keys translated code by virtual
    /// address, so with randomised library addresses every new process is translated
    /// from scratch: `/bin/true` costs ~45 ms instead of ~9 ms, `bash -c` ~100 ms
    /// instead of ~16 ms. The VM, not ASLR, is the isolation boundary.
    public var guestASLR: Bool? = nil
    /// CPU model under TCG (`OMNIRUN_QEMU_CPU`). Simpler models (no AVX) are cheaper to emulate.
    public var tcgCPU: String = "max"
    /// Size of TCG's translation cache in MiB (`OMNIRUN_TCG_TB_MB`; nil: QEMU's default).
    public var tcgTranslationCacheMB: Int? = nil

    /// Restores pass QEMU the kernel's header only and write overlays without `qemu-img`
    /// (`RestoreShortcuts`; `OMNIRUN_RESTORE_PATH=previous` turns both off, for comparison).
    public var restoreShortcuts: Bool = true

    /// Transparent huge pages for QEMU (`OMNIRUN_QEMU_THP=on`; default off). QEMU asks for
    /// them on TCG's translation buffer, whose last 2 MiB page is then mostly empty, and
    /// on other regions it touches sparsely: about 1.5 MiB of memory per VMM.
    public var transparentHugePages: Bool = false

    public init() {}
}
