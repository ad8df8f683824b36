import Foundation

/// Where a machine's Unix sockets live. A socket's path must fit in `sun_path`
/// (SwiftNIO accepts at most 103 bytes), and a machine's folder can be deep (a data
/// directory under a long home, a test run's folder): a path that would be too long
/// moves to `/tmp/omr-<hash of the folder>-<name>`, the same for every process that
/// computes it (a restarted server finds its machines' sockets again).
public enum MachineSockets {
    public static let maxPathBytes = 103
    /// Every socket a machine may have.
    public static let names = ["agent.sock", "qmp.sock", "migrate.sock"]

    public static func path(_ directory: String, _ name: String) -> String {
        let inFolder = directory + "/" + name
        if inFolder.utf8.count <= maxPathBytes { return inFolder }
        return "/tmp/omr-\(fnv1a(directory))-\(name)"
    }

    /// Removes the sockets of a machine that were placed outside its folder.
    public static func removeOutsideFolder(_ directory: String, names: [String]) {
        for name in names {
            let path = path(directory, name)
            if !path.hasPrefix(directory + "/") { unlink(path) }
        }
    }

    /// 64-bit FNV-1a, hexadecimal: short, stable across processes and builds.
    static func fnv1a(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// How a VMM's command line names its machine's folder, so that the server can find the
/// VMMs of a folder (after a restart, or to remove an orphan): QEMU gets
/// `-name guest=<folder>/` (its other files are named relative to the folder; the
/// slash keeps "<folder>/" in the command line, as paths inside it were before).
public enum MachineProcessMarker {
    /// The argument that names `directory` (QEMU's option syntax doubles commas).
    public static func argument(forDirectory directory: String) -> String {
        "guest=" + directory.replacingOccurrences(of: ",", with: ",,") + "/"
    }

    /// Whether a process's raw `/proc/PID/cmdline` is the VMM of `directory` (or, for a
    /// VMM of an older server, names its agent socket).
    public static func matches(_ cmdline: [UInt8], directory: String) -> Bool {
        let marker = argument(forDirectory: directory)
        let socket = MachineSockets.path(directory, "agent.sock")
        return cmdline.split(separator: 0).contains { bytes in
            let word = String(decoding: bytes, as: UTF8.self)
            return word == marker || word.contains(socket)
        }
    }
}
