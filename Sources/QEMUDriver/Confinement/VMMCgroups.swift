import Foundation
import Logging
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// A cgroup per VMM with `memory.max` and `pids.max` from its template: a runaway or
/// subverted QEMU cannot take the host's memory or fill its process table. On cgroup v2
/// the groups live under the server's own cgroup (what a supervisor delegates to it),
/// in `omnirun-vmm/`.
///
/// cgroup v2 (the unified hierarchy with the memory and pids controllers) is used where
/// it has them; on a host whose memory and pids controllers are still on cgroup v1
/// hierarchies (a hybrid layout) the v1 groups are used (`memory.limit_in_bytes`,
/// `pids.max`; at each hierarchy's top). Without either (no permission, no delegation) VMMs run without a group
/// of their own and the server logs why, once.
public struct VMMCgroups: Sendable {
    public enum Layout: Sendable, Equatable {
        /// `base` holds one group per machine (its `cgroup.subtree_control` enables memory and pids).
        case v2(base: String)
        case v1(memory: String, pids: String)
        case unavailable(String)
    }

    public let layout: Layout

    /// The group of one machine: its directory (per hierarchy) and the limits set on it.
    public struct Group: Sendable, Equatable {
        public var directories: [String]
        public var memoryBytes: Int64
        public var pidsMax: Int
        /// The files the VMM writes its pid into, before it runs.
        public var procsFiles: [String] { directories.map { $0 + "/cgroup.procs" } }
    }

    static let folder = "omnirun-vmm"

    init(layout: Layout) {
        self.layout = layout
    }

    /// Finds (and prepares) where this server's VMM groups go.
    static func detect(enabled: Bool, logger: Logger) -> VMMCgroups {
        guard enabled else { return VMMCgroups(layout: .unavailable("turned off (OMNIRUN_QEMU_CGROUPS=off)")) }
        let layout = prepare()
        if case .unavailable(let reason) = layout {
            logger.warning(
                "QEMU runs without a cgroup of its own (no memory.max or pids.max per machine)", metadata: ["reason": "\(reason)"])
        } else {
            logger.info("each QEMU runs in its own cgroup", metadata: ["layout": "\(layout)"])
        }
        let cgroups = VMMCgroups(layout: layout)
        cgroups.removeAbandoned()
        return cgroups
    }

    /// Removes groups no process is in any more that were made over a minute ago (their
    /// VMM ended while no server watched it); a group just made for a VMM about to start
    /// is younger.
    func removeAbandoned() {
        let folders: [String]
        switch layout {
        case .unavailable: return
        case .v2(let base): folders = [base]
        case .v1(let memory, let pids): folders = [memory, pids]
        }
        let now = time(nil)
        for folder in folders {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
                let group = folder + "/" + name
                var info = stat()
                guard stat(group, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, now - info.st_mtim.tv_sec > 60,
                    let procs = try? String(contentsOfFile: group + "/cgroup.procs", encoding: .utf8),
                    procs.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                else { continue }
                rmdir(group)
            }
        }
    }

    private static func prepare() -> Layout {
        let mounts = Mounts.read()
        let membership = Membership.read()
        var v2Problem: String? = nil
        if let unified = mounts.unified, let own = membership.unified {
            let controllers = (try? String(contentsOfFile: unified + "/cgroup.controllers", encoding: .utf8)) ?? ""
            let available = Set(controllers.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
            if available.isSuperset(of: ["memory", "pids"]) {
                switch prepareV2(mount: unified, own: own) {
                case .success(let base): return .v2(base: base)
                case .failure(let error): v2Problem = error.message
                }
            }
        }
        if let memoryMount = mounts.v1["memory"], let pidsMount = mounts.v1["pids"] {
            // cgroup v1 has no delegation to speak of: the groups go at each hierarchy's
            // top, as virtual machine managers' do there (the server's own group, which a
            // supervisor may remove, is left alone).
            let memory = memoryMount + "/" + folder
            let pids = pidsMount + "/" + folder
            for directory in [memory, pids] where mkdir(directory, 0o755) != 0 && errno != EEXIST {
                return .unavailable("cannot create \(directory): \(String(cString: strerror(errno)))")
            }
            return .v1(memory: memory, pids: pids)
        }
        return .unavailable(v2Problem ?? "no cgroup hierarchy with the memory and pids controllers is mounted")
    }

    /// The server's cgroup must delegate memory and pids to children, which cgroup v2
    /// allows only for a group holding no processes itself (the root excepted): if the
    /// server is alone in its group it moves into a leaf `omnirun-server` first.
    private static func prepareV2(mount: String, own: String) -> Result<String, OmniRunError> {
        let ownDirectory = join(mount, own)
        func enable(_ directory: String) -> Bool {
            write("+memory +pids", to: directory + "/cgroup.subtree_control")
        }
        if !enable(ownDirectory) {
            guard own != "/" else {
                return .failure(OmniRunError(.unavailable, "cannot enable memory and pids in \(ownDirectory)/cgroup.subtree_control"))
            }
            let members = ((try? String(contentsOfFile: ownDirectory + "/cgroup.procs", encoding: .utf8)) ?? "")
                .split(separator: "\n").compactMap { Int32($0) }
            guard members == [getpid()] else {
                return .failure(
                    OmniRunError(
                        .unavailable,
                        "the server's cgroup \(own) holds other processes: run the server in a cgroup of its own with delegation (systemd: Delegate=yes)"))
            }
            let leaf = ownDirectory + "/omnirun-server"
            guard mkdir(leaf, 0o755) == 0 || errno == EEXIST, write("\(getpid())", to: leaf + "/cgroup.procs"), enable(ownDirectory)
            else {
                return .failure(OmniRunError(.unavailable, "cannot delegate memory and pids below \(ownDirectory) (no permission?)"))
            }
        }
        let base = ownDirectory + "/" + folder
        guard mkdir(base, 0o755) == 0 || errno == EEXIST, enable(base) else {
            return .failure(OmniRunError(.unavailable, "cannot create \(base) with memory and pids enabled"))
        }
        return .success(base)
    }

    /// The group name of a machine: its name and a hash of its folder (unique on the host).
    static func groupName(machine: String, directory: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in directory.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let safe = String(machine.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_" ? Character($0) : "_" })
        return "\(safe.prefix(64))-\(String(hash & 0xffff_ffff, radix: 16))"
    }

    /// Makes a machine's group with its limits (nil: groups are unavailable here).
    func create(machine: String, directory: String, memoryBytes: Int64, pidsMax: Int) throws -> Group? {
        let name = Self.groupName(machine: machine, directory: directory)
        let directories: [String]
        var settings: [(String, String)]
        switch layout {
        case .unavailable:
            return nil
        case .v2(let base):
            directories = [base + "/" + name]
            settings = [("memory.max", "\(memoryBytes)"), ("memory.oom.group", "1"), ("pids.max", "\(pidsMax)")]
        case .v1(let memory, let pids):
            directories = [memory + "/" + name, pids + "/" + name]
            settings = [("memory.limit_in_bytes", "\(memoryBytes)"), ("pids.max", "\(pidsMax)")]
        }
        for directory in directories where mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw OmniRunError(.machineFailed, "cannot create the cgroup \(directory): \(String(cString: strerror(errno)))")
        }
        for (file, value) in settings {
            guard let directory = directories.first(where: { FileManager.default.fileExists(atPath: $0 + "/" + file) }) else {
                if file == "memory.oom.group" { continue }
                throw OmniRunError(.machineFailed, "the cgroup of \(machine) has no \(file)")
            }
            guard Self.write(value, to: directory + "/" + file) else {
                throw OmniRunError(.machineFailed, "cannot set \(file)=\(value) for \(machine): \(String(cString: strerror(errno)))")
            }
        }
        return Group(directories: directories, memoryBytes: memoryBytes, pidsMax: pidsMax)
    }

    /// Removes a machine's group once its VMM has gone (a group still holding a process
    /// stays; removing it again later is harmless).
    func remove(machine: String, directory: String) {
        let name = Self.groupName(machine: machine, directory: directory)
        switch layout {
        case .unavailable: return
        case .v2(let base): rmdir(base + "/" + name)
        case .v1(let memory, let pids):
            rmdir(memory + "/" + name)
            rmdir(pids + "/" + name)
        }
    }

    static func write(_ text: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }

    static func join(_ mount: String, _ path: String) -> String {
        path == "/" ? mount : mount + path
    }

    /// Where the cgroup hierarchies are mounted (`/proc/self/mountinfo`).
    struct Mounts {
        var unified: String?
        var v1: [String: String] = [:]

        static func read() -> Mounts {
            var mounts = Mounts()
            let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
                let halves = line.components(separatedBy: " - ")
                guard halves.count == 2 else { continue }
                let left = halves[0].split(separator: " ")
                let right = halves[1].split(separator: " ")
                guard left.count >= 5, right.count >= 3, left[3] == "/" else { continue }
                let point = String(left[4])
                if right[0] == "cgroup2", mounts.unified == nil {
                    mounts.unified = point
                } else if right[0] == "cgroup" {
                    for option in right[2].split(separator: ",") where option == "memory" || option == "pids" {
                        mounts.v1[String(option)] = point
                    }
                }
            }
            return mounts
        }
    }

    /// The server's own groups (`/proc/self/cgroup`).
    struct Membership {
        var unified: String?
        var v1: [String: String] = [:]

        static func read() -> Membership {
            var membership = Membership()
            let text = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard fields.count == 3 else { continue }
                let path = String(fields[2])
                if fields[0] == "0", fields[1].isEmpty {
                    membership.unified = path
                } else {
                    for controller in fields[1].split(separator: ",") where controller == "memory" || controller == "pids" {
                        membership.v1[String(controller)] = path
                    }
                }
            }
            return membership
        }
    }
}

extension VMMCgroups {
    /// The memory and pids limits of the groups a process is in (v2's `memory.max` or
    /// v1's `memory.limit_in_bytes`; nil where there is none), and the group paths.
    public static func limits(ofProcess pid: Int32) -> (memoryBytes: Int64?, pidsMax: Int?, groups: [String]) {
        let mounts = Mounts.read()
        let text = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
        var memory: Int64? = nil
        var pids: Int? = nil
        var groups: [String] = []
        func value(_ path: String) -> String? {
            (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = String(fields[2])
            if fields[0] == "0", fields[1].isEmpty, let unified = mounts.unified {
                let directory = join(unified, path)
                if let text = value(directory + "/memory.max") { memory = Int64(text) ?? memory }
                if let text = value(directory + "/pids.max") { pids = Int(text) ?? pids }
                groups.append(directory)
            }
            for controller in fields[1].split(separator: ",") {
                guard let mount = mounts.v1[String(controller)] else { continue }
                let directory = join(mount, path)
                groups.append(directory)
                if controller == "memory", let text = value(directory + "/memory.limit_in_bytes") { memory = Int64(text) }
                if controller == "pids", let text = value(directory + "/pids.max") { pids = Int(text) }
            }
        }
        return (memory, pids, groups)
    }
}
