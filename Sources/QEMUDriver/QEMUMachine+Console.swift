import CVMMLauncher
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The guest console's log is bounded: QEMU appends to `console.log` (the guest's root
/// may print to `/dev/console` for ever) and to `qemu.log` (its own messages, some of
/// which a guest can provoke), and twice a second the server cuts each file to
/// its newest half once it passes `consoleLogBytes` (4 MiB by default). The oldest
/// blocks are removed in place (`FALLOC_FL_COLLAPSE_RANGE`, consistent with QEMU's
/// appends); where the file system cannot, the newest half is copied to the front.
extension QEMUMachine {
    func limitConsole() {
        let paths = [serialLogPath, directory + "/qemu.log"]
        let limit = max(confinement.consoleLimit, 64 << 10)
        Task { [weak self] in
            while let machine = self, !machine.hasExited {
                for path in paths { Self.trimConsole(path, limit: limit) }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Cuts the file at `path` to about `limit / 2` newest bytes if it is over `limit`.
    /// Returns the bytes removed.
    @discardableResult
    static func trimConsole(_ path: String, limit: Int) -> Int64 {
        let fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Int64(info.st_size) > Int64(limit) else { return 0 }
        let size = Int64(info.st_size)
        let block = Int64(max(info.st_blksize, 4096))
        let drop = (size - Int64(limit / 2)) / block * block
        guard drop > 0 else { return 0 }
        if omr_collapse_front(fd, drop) == 0 { return drop }
        // No collapse here: keep the newest half at the front (what QEMU appends
        // meanwhile may be cut short; it is a console).
        let keep = Int(size - drop)
        var buffer = [UInt8](repeating: 0, count: keep)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, keep, off_t(drop)) }
        guard count > 0 else { return 0 }
        guard ftruncate(fd, 0) == 0 else { return 0 }
        _ = buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress, count, 0) }
        return drop
    }
}
