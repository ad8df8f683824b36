import OmniRunCore

/// Builds QEMU's argument list. A restore must describe exactly the same machine
/// as the boot that made the snapshot, so both come from here.
///
/// QEMU runs in the machine's folder as an unprivileged user that may not reach the
/// server's other folders by path: what lies outside the folder (kernel, initramfs, the
/// disk's read-only layers, a snapshot's memory) arrives as open descriptors, named
/// `/proc/self/fd/N` or `/dev/fdset/N`; the folder's own files are named relative to it;
/// the agent and QMP sockets are listening sockets the server made (`fd=N`).
struct QEMUCommandLine {
    var accelerator: Accelerator
    var tscKHz: Int?
    var memoryMB: Int
    var vcpus: Int
    /// The machine's folder (in `-name`, so that the VMM's command line says whose it is).
    var directory: String
    /// Paths as QEMU opens them (`/proc/self/fd/N`).
    var kernel: String
    var initrd: String
    /// The machine's own overlay (relative to the folder) and its read-only layers.
    var disk: String = "disk.qcow2"
    var diskLayers: [(fdset: Int, format: String)] = []
    /// Descriptors (as QEMU numbers them) of listening sockets.
    var agentSocketFD: Int
    var qmpSocketFD: Int
    /// The guest console's file (relative; QEMU appends, the server keeps it short).
    var consoleLog: String = "console.log"
    /// Guest RAM lives in this file (shared for a snapshotable boot, private for a restore).
    var memoryFile: String?
    var shareMemory: Bool
    /// Guest RAM in an anonymous backend named like the file one (a resumed machine:
    /// its memory arrives in the migration stream, and the RAM block names must match).
    var anonymousMemory: Bool = false
    /// `-incoming defer`: the device state is loaded from stdin (`fd:0`) over QMP.
    var incoming: Bool
    var seccomp: Bool
    /// `-add-fd` sets (descriptor as QEMU numbers it, set id).
    var fdSets: [(fd: Int, set: Int)] = []
    var extraKernelArguments: [String]
    var tcgCPU: String = "max"
    var tcgTranslationCacheMB: Int? = nil
    /// A virtio network card (nil: none).
    var nic: MachineNIC? = nil
    /// The descriptor (as QEMU numbers it) of the card's TAP device, opened by the launcher.
    var tapFD: Int? = nil

    /// Every guest with a card has this MAC address (each lives in its own namespace).
    static let guestMAC = "52:54:00:0a:00:0f"

    /// QEMU's filter: no obsolete calls, no set*id, no fork/exec, no scheduler changes.
    static let sandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

    var kernelCommandLine: String {
        var words = ["console=ttyS0", "quiet", "loglevel=3", "reboot=t", "panic=-1", "random.trust_cpu=on"]
        if let tscKHz {
            words += ["tsc_early_khz=\(tscKHz)", "tsc=reliable", "no_timer_check"]
        }
        if nic != nil { words.append(MachineNIC.kernelArgument) }
        return (words + extraKernelArguments).joined(separator: " ")
    }

    /// QEMU's option syntax: a comma inside a value is written twice.
    static func escape(_ value: String) -> String { value.replacingOccurrences(of: ",", with: ",,") }

    /// `-drive` with the layers under the overlay spelled out (QEMU never follows a
    /// backing-file name from a header).
    var driveOption: String {
        var option = "id=root,if=none,format=qcow2,discard=unmap,file=\(Self.escape(disk))"
        var prefix = "backing."
        for layer in diskLayers {
            option += ",\(prefix)driver=\(layer.format),\(prefix)file.filename=/dev/fdset/\(layer.fdset)"
            prefix += "backing."
        }
        return option
    }

    var arguments: [String] {
        var args: [String] = [
            "-name", MachineProcessMarker.argument(forDirectory: directory),
            "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on" + (memoryFile != nil || anonymousMemory ? ",memory-backend=mem" : ""),
        ]
        switch accelerator {
        case .tcg: args += ["-accel", "tcg,thread=multi" + (tcgTranslationCacheMB.map { ",tb-size=\($0)" } ?? ""), "-cpu", tcgCPU]
        case .kvm: args += ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
        }
        for entry in fdSets {
            args += ["-add-fd", "fd=\(entry.fd),set=\(entry.set)"]
        }
        args += [
            "-m", "\(memoryMB)M", "-smp", "\(vcpus)",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-chardev", "file,id=console,path=\(Self.escape(consoleLog)),append=on",
            "-serial", "chardev:console",
            "-kernel", kernel, "-initrd", initrd, "-append", kernelCommandLine,
            "-drive", driveOption,
            "-device", "virtio-blk-device,drive=root",
            "-device", "virtio-serial-device",
            "-chardev", "socket,id=agent,fd=\(agentSocketFD),server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=omnirun.0",
            "-chardev", "socket,id=qmp,fd=\(qmpSocketFD),server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
        ]
        switch nic {
        case nil: break
        case .unconnected:
            args += ["-netdev", "hubport,id=net0,hubid=0", "-device", "virtio-net-device,netdev=net0,mac=\(Self.guestMAC)"]
        case .tap:
            args += [
                "-netdev", "tap,id=net0,fd=\(tapFD ?? -1)",
                "-device", "virtio-net-device,netdev=net0,mac=\(Self.guestMAC)",
            ]
        }
        if let memoryFile {
            args += [
                "-object",
                "memory-backend-file,id=mem,size=\(memoryMB)M,mem-path=\(Self.escape(memoryFile)),share=\(shareMemory ? "on" : "off")",
            ]
        } else if anonymousMemory {
            args += ["-object", "memory-backend-ram,id=mem,size=\(memoryMB)M"]
        }
        if incoming {
            args += ["-incoming", "defer"]
        }
        if seccomp {
            args += ["-sandbox", Self.sandbox]
        }
        return args
    }
}
