import Foundation
import OmniRunCore

#if canImport(Glibc)
import Glibc
#endif

extension SandboxRuntime {
    /// Removes machine folders (and kills their VMMs) that belong to no known sandbox.
    public func removeOrphans(keeping: Set<SandboxID>) async {
        let builds = configuration.dataDirectory + "/builds"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: builds)) ?? [] where buildMachines[entry] == nil {
            for pid in Self.processes(of: "\(builds)/\(entry)") { kill(pid, SIGKILL) }
            try? FileManager.default.removeItem(atPath: "\(builds)/\(entry)")
            MachineSockets.removeOutsideFolder("\(builds)/\(entry)", names: MachineSockets.names)
        }
        let root = configuration.dataDirectory + "/sandboxes"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        for entry in entries {
            guard let id = SandboxID(entry), !keeping.contains(id), sandboxes[id] == nil else { continue }
            if await pool.owns(id) { continue }
            let directory = root + "/" + entry
            for pid in Self.processes(of: directory) { kill(pid, SIGKILL) }
            try? FileManager.default.removeItem(atPath: directory)
            MachineSockets.removeOutsideFolder(directory, names: MachineSockets.names)
            logger.warning("removed an orphaned sandbox machine", metadata: ["sandbox": "\(entry)"])
        }
        await network.removeOrphans(keeping: keeping.union(sandboxes.keys).union(buildNetworks.values))
    }

    /// The VMMs of a machine folder (by their command line, `MachineProcessMarker`).
    static func processes(of directory: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return MachineProcessMarker.matches(Array(data), directory: directory)
        }
    }
}
