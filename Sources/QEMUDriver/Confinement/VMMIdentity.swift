import Foundation
import Logging
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// The unprivileged user every QEMU runs as (`OMNIRUN_QEMU_USER`, default `omnirun-qemu`,
/// created by `scripts/install-deps.sh`). A server running as root starts each VMM as
/// that user (with its own groups, e.g. `kvm`), never as root. A server that is not root
/// cannot change user: its VMMs run as the server's own user, which is already
/// unprivileged (logged once).
public struct VMMIdentity: Sendable, Equatable {
    public var user: String
    public var uid: uid_t
    public var gid: gid_t
    public var groups: [gid_t]

    public static let defaultUser = "omnirun-qemu"

    /// Nil when VMMs keep the server's identity (the server is not root, or the
    /// operator chose `root`); throws when the user does not exist.
    static func resolve(_ name: String?, logger: Logger) throws -> VMMIdentity? {
        let name = name ?? defaultUser
        guard geteuid() == 0 else {
            logger.warning(
                "the server is not root: QEMU runs as the server's own user, not as a dedicated one",
                metadata: ["uid": "\(geteuid())"])
            return nil
        }
        if name == "root" {
            logger.warning("OMNIRUN_QEMU_USER=root: QEMU runs as root (no user separation between the VMM and the host)")
            return nil
        }
        guard let entry = getpwnam(name) else {
            throw OmniRunError(
                .unavailable,
                "QEMU's user '\(name)' does not exist: run scripts/install-deps.sh (it creates \(defaultUser)) or set OMNIRUN_QEMU_USER to an unprivileged user")
        }
        let uid = entry.pointee.pw_uid
        let gid = entry.pointee.pw_gid
        guard uid != 0, gid != 0 else {
            throw OmniRunError(.invalidArgument, "QEMU's user '\(name)' is root (uid or gid 0): choose an unprivileged user")
        }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(max(count, 1)))
            _ = getgrouplist(name, gid, &groups, &count)
        }
        let supplementary = Array(groups.prefix(Int(max(count, 0)))).filter { $0 != 0 }
        return VMMIdentity(user: name, uid: uid, gid: gid, groups: supplementary.isEmpty ? [gid] : supplementary)
    }

    /// Gives a file the server made to this user (QEMU writes it: a disk overlay, a
    /// memory file, the console log), readable and writable by it alone.
    func own(_ path: String) throws {
        guard chown(path, uid, gid) == 0, chmod(path, 0o600) == 0 else {
            throw OmniRunError(.internalError, "cannot give \(path) to \(user): errno \(errno)")
        }
    }
}

extension Optional where Wrapped == VMMIdentity {
    /// `own` when there is a dedicated user; otherwise the file stays the server's.
    func own(_ path: String) throws {
        if let identity = self { try identity.own(path) }
    }
}
