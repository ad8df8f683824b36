import OmniRunCore

/// Builds QEMU's argument list. A restore must describe exactly the same machine
/// as the boot that made the snapshot, so both come from here.
struct QEMUCommandLine {
    var accelerator: Accelerator
    var tscKHz: Int?
    var memoryMB: Int
    var vcpus: Int
    var kernel: String
    var initrd: String
    var disk: String
    var agentSocket: String
    var qmpSocket: String
    var serialLog: String
    /// Guest RAM lives in this file (shared for a snapshotable boot, private for a restore).
    var memoryFile: String?
    var shareMemory: Bool
    /// Guest RAM in an anonymous backend named like the file one (a resumed machine:
    /// its memory arrives in the migration stream, and the RAM block names must match).
    var anonymousMemory: Bool = false
    /// `-incoming defer`: the device state is loaded from stdin (`fd:0`) over QMP.
    var incoming: Bool
    var seccomp: Bool
    var allowSpawn: Bool
    var runAs: String?
    var extraKernelArguments: [String]
    var tcgCPU: String = "max"
    var tcgTranslationCacheMB: Int? = nil
    /// A virtio network card (nil: none).
    var nic: MachineNIC? = nil

    /// Every guest with a card has this MAC address (each lives in its own namespace).
    static let guestMAC = "52:54:00:0a:00:0f"

    var kernelCommandLine: String {
        var words = ["console=ttyS0", "quiet", "loglevel=3", "reboot=t", "panic=-1", "random.trust_cpu=on"]
        if let tscKHz {
            words += ["tsc_early_khz=\(tscKHz)", "tsc=reliable", "no_timer_check"]
        }
        if nic != nil { words.append(MachineNIC.kernelArgument) }
        return (words + extraKernelArguments).joined(separator: " ")
    }

    var arguments: [String] {
        var args: [String] = [
            "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on" + (memoryFile != nil || anonymousMemory ? ",memory-backend=mem" : ""),
        ]
        switch accelerator {
        case .tcg: args += ["-accel", "tcg,thread=multi" + (tcgTranslationCacheMB.map { ",tb-size=\($0)" } ?? ""), "-cpu", tcgCPU]
        case .kvm: args += ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
        }
        args += [
            "-m", "\(memoryMB)M", "-smp", "\(vcpus)",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-serial", "file:\(serialLog)",
            "-kernel", kernel, "-initrd", initrd, "-append", kernelCommandLine,
            "-drive", "id=root,file=\(disk),format=qcow2,if=none,discard=unmap",
            "-device", "virtio-blk-device,drive=root",
            "-device", "virtio-serial-device",
            "-chardev", "socket,id=agent,path=\(agentSocket),server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=omnirun.0",
            "-qmp", "unix:\(qmpSocket),server=on,wait=off",
        ]
        switch nic {
        case nil: break
        case .unconnected:
            args += ["-netdev", "hubport,id=net0,hubid=0", "-device", "virtio-net-device,netdev=net0,mac=\(Self.guestMAC)"]
        case .tap(_, let device):
            args += [
                "-netdev", "tap,id=net0,ifname=\(device),script=no,downscript=no",
                "-device", "virtio-net-device,netdev=net0,mac=\(Self.guestMAC)",
            ]
        }
        if let memoryFile {
            args += [
                "-object",
                "memory-backend-file,id=mem,size=\(memoryMB)M,mem-path=\(memoryFile),share=\(shareMemory ? "on" : "off")",
            ]
        } else if anonymousMemory {
            args += ["-object", "memory-backend-ram,id=mem,size=\(memoryMB)M"]
        }
        if incoming {
            args += ["-incoming", "defer"]
        }
        if seccomp {
            args += [
                "-sandbox",
                "on,obsolete=deny,elevateprivileges=\(runAs == nil ? "deny" : "children"),spawn=\(allowSpawn ? "allow" : "deny"),resourcecontrol=deny",
            ]
        }
        if let runAs { args += ["-runas", runAs] }
        return args
    }
}
