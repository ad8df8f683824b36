import CVMMLauncher
import Foundation
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Starts a VMM confined: in its own session, network namespace (for a card) and
/// cgroup, with only the descriptors it is given, in its machine's folder, as the VMM
/// user, with no way to gain privileges. QEMU's own seccomp filter comes on top.
struct VMMLaunch {
    var executable: String
    var arguments: [String]
    var standardInput: Int32
    var standardOutput: Int32
    /// Descriptors the VMM gets as 3, 4, 5, ... in this order.
    var passed: [Int32] = []
    /// `/run/netns/<namespace>` to enter (nil: the server's).
    var networkNamespace: String?
    /// A TAP device in that namespace, attached by the launcher (its descriptor's place in `passed`).
    var tap: (device: String, index: Int)?
    var cgroup: VMMCgroups.Group?
    var identity: VMMIdentity?
    var directory: String
    /// No transparent huge pages for the VMM.
    var noHugePages = false

    /// Adds a descriptor and returns the number the VMM sees it as.
    mutating func pass(_ fd: Int32) -> Int {
        passed.append(fd)
        return 2 + passed.count
    }

    /// Reserves the descriptor of a TAP device (opened in the namespace, while still
    /// privileged) and returns the number the VMM sees it as.
    mutating func attachTAP(_ device: String) -> Int {
        passed.append(-1)
        tap = (device, passed.count - 1)
        return 2 + passed.count
    }

    /// Spawns the VMM; returns its pid.
    func spawn() throws -> Int32 {
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        var netns: Int32 = -1
        if let networkNamespace {
            netns = open("/run/netns/\(networkNamespace)", O_RDONLY | O_CLOEXEC)
            guard netns >= 0 else {
                throw OmniRunError(.machineFailed, "cannot open the network namespace \(networkNamespace): errno \(errno)")
            }
            opened.append(netns)
        }
        var cgroupFDs: [Int32] = []
        for file in cgroup?.procsFiles ?? [] {
            let fd = open(file, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw OmniRunError(.machineFailed, "cannot open \(file): errno \(errno)") }
            opened.append(fd)
            cgroupFDs.append(fd)
        }
        let words: [String] = [executable] + arguments
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        // QEMU needs no environment of the server's (no keys, no proxies).
        let variables: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
        let environment: [UnsafeMutablePointer<CChar>?] = variables.map { strdup($0) } + [nil]
        defer { for pointer in environment { free(pointer) } }
        let groups = identity?.groups ?? []
        var error: Int32 = 0
        var stage: UnsafePointer<CChar>? = nil
        let pid: pid_t = executable.withCString { path in
            argv.withUnsafeBufferPointer { argvBuffer in
                environment.withUnsafeBufferPointer { envBuffer in
                    passed.withUnsafeBufferPointer { passBuffer in
                        cgroupFDs.withUnsafeBufferPointer { cgroupBuffer in
                            groups.withUnsafeBufferPointer { groupBuffer in
                                withOptionalCString(tap?.device) { tapName in
                                directory.withCString { cwd in
                                    var arguments = omr_vmm_spawn_args()
                                    arguments.path = path
                                    arguments.argv = UnsafePointer(argvBuffer.baseAddress)
                                    arguments.envp = UnsafePointer(envBuffer.baseAddress)
                                    arguments.stdin_fd = standardInput
                                    arguments.stdout_fd = standardOutput
                                    arguments.stderr_fd = standardOutput
                                    arguments.pass_fds = passBuffer.baseAddress
                                    arguments.pass_count = Int32(passBuffer.count)
                                    arguments.netns_fd = netns
                                    arguments.tap_name = tapName
                                    arguments.tap_index = Int32(tap?.index ?? -1)
                                    arguments.cgroup_fds = cgroupBuffer.baseAddress
                                    arguments.cgroup_count = Int32(cgroupBuffer.count)
                                    arguments.change_identity = identity == nil ? 0 : 1
                                    arguments.uid = identity?.uid ?? 0
                                    arguments.gid = identity?.gid ?? 0
                                    arguments.groups = groupBuffer.baseAddress
                                    arguments.group_count = Int32(groupBuffer.count)
                                    arguments.cwd = cwd
                                    arguments.no_huge_pages = noHugePages ? 1 : 0
                                    return omr_vmm_spawn(&arguments, &error, &stage)
                                }
                                }
                            }
                        }
                    }
                }
            }
        }
        guard pid > 0 else {
            let step = stage.map { String(cString: $0) } ?? "?"
            throw OmniRunError(.machineFailed, "cannot start QEMU (\(step)): \(String(cString: strerror(error)))")
        }
        return pid
    }
}

private func withOptionalCString<T>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> T) -> T {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}

/// Waits for one child VMM on a thread of its own (a blocking `waitpid`), so its exit
/// is noticed at once and it never lingers as a zombie.
enum ChildReaper {
    static func watch(_ pid: Int32, exited: @escaping @Sendable (_ status: Int32, _ signalled: Bool) -> Void) {
        let thread = Thread {
            var status: Int32 = 0
            while true {
                let result = waitpid(pid, &status, 0)
                if result == pid { break }
                if result < 0 && errno == EINTR { continue }
                // Someone else reaped it: it has gone, how is unknown.
                exited(-1, true)
                return
            }
            let signal = status & 0x7f
            exited(signal != 0 ? signal : (status >> 8) & 0xff, signal != 0)
        }
        thread.name = "omnirun-vmm-\(pid)"
        thread.stackSize = 256 << 10
        thread.start()
    }
}
