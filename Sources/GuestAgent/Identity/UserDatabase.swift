import AgentProtocol

#if canImport(Glibc)
import Glibc
#endif

/// A user of the guest, read from the root filesystem's /etc/passwd and /etc/group.
struct GuestUser: Sendable, Equatable {
    var name: String
    var uid: UInt32
    var gid: UInt32
    var home: String
    var shell: String
    var groups: [UInt32]
}

extension GuestUser {
    /// The kernel's limit on supplementary groups (`NGROUPS_MAX`).
    static let maxGroups = 65536

    /// Refuses a user the agent cannot become: uid or gid 4294967295 means "no change" to
    /// the kernel's set*id calls (the work would run as root), and more than `maxGroups`
    /// groups cannot be set. `/etc/passwd` and `/etc/group` are the guest root's to write.
    func checkSwitchable() throws {
        guard uid != UInt32.max, gid != UInt32.max, groups.count <= Self.maxGroups else {
            throw AgentFailure(
                status: 403, code: AgentErrorCode.permissionDenied,
                message: "cannot act as user '\(name)' (uid \(uid), gid \(gid), \(groups.count) groups): the kernel cannot switch to it")
        }
    }
}

/// Reads users straight from the files, so the agent needs no NSS modules and sees
/// users added at run time.
enum UserDatabase {
    static func lookup(_ name: String, root: String = "") throws -> GuestUser {
        guard let passwd = readSmallFile(root + "/etc/passwd") else {
            throw AgentFailure.notFound("cannot read /etc/passwd")
        }
        for line in passwd.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7 else { continue }
            let matches = fields[0] == name || (UInt32(name) != nil && fields[2] == name)
            guard matches, let uid = UInt32(fields[2]), let gid = UInt32(fields[3]) else { continue }
            let userName = String(fields[0])
            var groups: [UInt32] = [gid]
            if let group = readSmallFile(root + "/etc/group") {
                for gline in group.split(separator: "\n") {
                    let g = gline.split(separator: ":", omittingEmptySubsequences: false)
                    guard g.count >= 4, let id = UInt32(g[2]) else { continue }
                    if g[3].split(separator: ",").contains(where: { $0 == userName }), !groups.contains(id) {
                        groups.append(id)
                    }
                }
            }
            return GuestUser(
                name: userName, uid: uid, gid: gid, home: String(fields[5]),
                shell: fields[6].isEmpty ? "/bin/sh" : String(fields[6]), groups: groups)
        }
        throw AgentFailure.badRequest("unknown user '\(name)'")
    }

    static func name(ofUID uid: UInt32) -> String? {
        guard let passwd = readSmallFile("/etc/passwd") else { return nil }
        for line in passwd.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.count >= 3, UInt32(fields[2]) == uid { return String(fields[0]) }
        }
        return nil
    }
}

/// Reads a small text file (at most 4 MiB) or nil.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while bytes.count < 4 << 20 {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes a whole file atomically enough for configuration files.
@discardableResult
func writeSmallFile(_ path: String, _ contents: String, mode: mode_t = 0o644) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let bytes = Array(contents.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        offset += n
    }
    return true
}
