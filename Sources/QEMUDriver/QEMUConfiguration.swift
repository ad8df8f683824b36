/// Settings of the QEMU backend. Each is read from the environment by the CLI
/// (`OMNIRUN_QEMU`, `OMNIRUN_QEMU_IMG`, `OMNIRUN_ACCEL`, `OMNIRUN_QEMU_SECCOMP`,
/// `OMNIRUN_QEMU_RUNAS`).
public struct QEMUConfiguration: Sendable {
    public var qemuBinary: String = "/usr/bin/qemu-system-x86_64"
    public var qemuImgBinary: String = "/usr/bin/qemu-img"
    /// Starts the VMM of a sandbox with internet access inside its network namespace.
    public var nsenterBinary: String = "/usr/bin/nsenter"
    /// `auto` probes KVM's speed once and falls back to TCG.
    public var accelerator: AcceleratorChoice = .auto
    /// Runs QEMU under its seccomp filter (`-sandbox on,...`).
    public var seccomp: Bool = true
    /// User QEMU drops to after opening its files, for restored sandboxes (nil: stay).
    public var runAs: String? = nil
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

    public init() {}
}
