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
