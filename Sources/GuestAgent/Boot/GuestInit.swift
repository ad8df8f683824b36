import CAgentSupport
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// What PID 1 does before it can serve: the kernel's virtual file systems, the
/// drivers from the initramfs, the root disk, and the switch into it.
struct GuestInit {
    let logger: Logger

    func run() throws {
        try mountFS("devtmpfs", "/dev", "devtmpfs", options: "mode=0755")
        try mountFS("proc", "/proc", "proc")
        try mountFS("sysfs", "/sys", "sysfs")
        ModuleLoader(logger: logger).loadAll(directory: "/lib/modules")
        let rootDevice = commandLineValue("omnirun.root") ?? "/dev/vda"
        try waitFor(path: rootDevice, timeoutMillis: 5000)
        let rootFlags = commandLineValue("omnirun.rootflags") ?? ""
        mkdir("/newroot", 0o755)
        try mountFS(rootDevice, "/newroot", "ext4", options: rootFlags)
        try switchRoot("/newroot")
        setupRuntimeMounts()
        let rc = omr_loopback_up()
        if rc != 0 { logger.warning("loopback up failed", metadata: ["errno": "\(rc)"]) }
        if let network = commandLineValue("omnirun.ip") { configureNetwork(network) }
        _ = "omnirun".withCString { sethostname($0, 7) }
        var limit = rlimit(rlim_cur: 65536, rlim_max: 65536)
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        signal(SIGPIPE, SIG_IGN)
    }

    /// A machine with a network card (`omnirun.ip=ADDRESS/PREFIX:GATEWAY`): its one
    /// interface gets the address and a default route, and the gateway is its DNS
    /// server. Done before the template's snapshot, so a restore needs nothing here.
    private func configureNetwork(_ value: String) {
        let parts = value.split(separator: ":")
        let address = parts.first?.split(separator: "/") ?? []
        guard parts.count == 2, address.count == 2, let prefix = Int32(address[1]),
            let ip = ipv4(String(address[0])), let gateway = ipv4(String(parts[1]))
        else {
            logger.warning("bad omnirun.ip", metadata: ["value": "\(value)"])
            return
        }
        do {
            try waitFor(path: "/sys/class/net/eth0", timeoutMillis: 3000)
        } catch {
            logger.warning("no network card appeared")
            return
        }
        let rc = omr_configure_ipv4("eth0", ip, prefix, gateway)
        if rc != 0 { logger.warning("network configuration failed", metadata: ["errno": "\(rc)"]) }
        unlink("/etc/resolv.conf")
        if !writeSmallFile("/etc/resolv.conf", "nameserver \(parts[1])\noptions timeout:2 attempts:2\n") {
            logger.warning("writing /etc/resolv.conf failed")
        }
    }

    /// A dotted IPv4 address in network byte order.
    private func ipv4(_ text: String) -> UInt32? {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return address.s_addr
    }

    private func mountFS(_ source: String, _ target: String, _ type: String, options: String = "", flags: UInt = 0) throws {
        mkdir(target, 0o755)
        let rc = options.withCString { opts in
            mount(source, target, type, flags, options.isEmpty ? nil : UnsafeRawPointer(opts))
        }
        if rc != 0 && errno != EBUSY {
            throw BootError("mount \(source) on \(target) (\(type)) failed: \(String(cString: strerror(errno)))")
        }
    }

    private func switchRoot(_ newRoot: String) throws {
        for path in ["/dev", "/proc", "/sys"] {
            mkdir(newRoot + path, 0o755)
            guard mount(path, newRoot + path, nil, UInt(MS_MOVE), nil) == 0 else {
                throw BootError("moving \(path) failed: \(String(cString: strerror(errno)))")
            }
        }
        guard chdir(newRoot) == 0, mount(newRoot, "/", nil, UInt(MS_MOVE), nil) == 0, chroot(".") == 0, chdir("/") == 0
        else {
            throw BootError("switching root failed: \(String(cString: strerror(errno)))")
        }
    }

    private func setupRuntimeMounts() {
        mkdir("/dev/pts", 0o755)
        mount("devpts", "/dev/pts", "devpts", UInt(MS_NOSUID | MS_NOEXEC), "gid=5,mode=620,ptmxmode=666")
        mkdir("/dev/shm", 0o1777)
        mount("tmpfs", "/dev/shm", "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=1777")
        mkdir("/run", 0o755)
        mount("tmpfs", "/run", "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=0755")
        mkdir("/tmp", 0o1777)
        chmod("/tmp", 0o1777)
        symlink("/proc/self/fd", "/dev/fd")
        symlink("/proc/self/fd/0", "/dev/stdin")
        symlink("/proc/self/fd/1", "/dev/stdout")
        symlink("/proc/self/fd/2", "/dev/stderr")
    }

    private func waitFor(path: String, timeoutMillis: Int64) throws {
        let deadline = Clock.monotonicMillis() + timeoutMillis
        while access(path, F_OK) != 0 {
            if Clock.monotonicMillis() > deadline { throw BootError("\(path) did not appear") }
            usleep(2000)
        }
    }
}

struct BootError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `key=value` from the kernel command line.
func commandLineValue(_ key: String) -> String? {
    guard let line = readSmallFile("/proc/cmdline") else { return nil }
    for word in line.trimmingNewlines().split(separator: " ") {
        let parts = word.split(separator: "=", maxSplits: 1)
        if parts.count == 2, parts[0] == key { return String(parts[1]) }
    }
    return nil
}

/// Loads the kernel modules listed in `modules.order`, in order, passing the
/// `module.param=value` words of the kernel command line as a modprobe would.
struct ModuleLoader {
    let logger: Logger

    func loadAll(directory: String) {
        guard let order = readSmallFile(directory + "/modules.order") else { return }
        let cmdline = readSmallFile("/proc/cmdline")?.trimmingNewlines() ?? ""
        for line in order.split(separator: "\n") {
            let file = line.trimmingNewlines()
            guard !file.isEmpty, !file.hasPrefix("#") else { continue }
            var name = file
            if name.hasSuffix(".ko") { name.removeLast(3) }
            let normalized = name.replacingDashes()
            let params = cmdline.split(separator: " ").compactMap { word -> String? in
                guard let dot = word.firstIndex(of: "."), word[..<dot].replacingDashes() == normalized else { return nil }
                return String(word[word.index(after: dot)...])
            }.joined(separator: " ")
            let fd = open(directory + "/" + file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                logger.warning("module missing", metadata: ["module": "\(file)"])
                continue
            }
            let rc = omr_finit_module(fd, params)
            close(fd)
            if rc != 0 && rc != EEXIST {
                logger.warning("module load failed", metadata: ["module": "\(file)", "errno": "\(rc)"])
            }
        }
    }
}

extension StringProtocol {
    fileprivate func replacingDashes() -> String {
        String(self.map { $0 == "-" ? "_" : $0 })
    }
}
