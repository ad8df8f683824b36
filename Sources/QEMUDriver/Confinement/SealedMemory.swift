import CVMMLauncher
import Foundation
import NIOConcurrencyHelpers
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Snapshot memory files as sealed in-memory copies (`memfd`), one per snapshot.
///
/// A restore maps its template's memory copy-on-write (`share=off`), but QEMU 7.2 opens
/// the file read-write to do so, and the snapshot's file must never be writable by the
/// VMM user: one subverted QEMU could then change the memory every later sandbox of the
/// template starts from. A sealed memfd (no writes, no resizing, ever) opens read-write
/// by anyone and still cannot be changed; its private mappings can. It is filled from
/// the file once (holes stay holes) and shared by every restore of that snapshot.
///
/// The copy lives in memory (shmem) as long as this server keeps it or a machine maps it:
/// the snapshot's non-zero pages, per server process. A copy no restore asked for in
/// `idleRelease` is dropped (its pages go once no machine maps them; the next restore
/// of that snapshot copies it again, ~0.4 s for a playground snapshot here).
final class SealedMemory: Sendable {
    private struct Entry {
        var fd: Int32
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: Int
        var lastUsed: ContinuousClock.Instant
    }
    private struct State {
        var entries: [String: Entry] = [:]
        var sweeping = false
    }
    private let state = NIOLockedValueBox(State())
    let idleRelease: Duration

    init(idleRelease: Duration = .seconds(600)) {
        self.idleRelease = idleRelease
    }

    /// A descriptor of the sealed copy of `path`, the caller's to close (a duplicate:
    /// the copy itself stays here for the next restore).
    func descriptor(for path: String) throws -> Int32 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw OmniRunError(.notFound, "snapshot memory missing: \(path)") }
        let (fd, startSweeping) = try state.withLockedValue { state -> (Int32, Bool) in
            let now = ContinuousClock.now
            // Copies of snapshots that were replaced or removed go.
            for (known, entry) in state.entries {
                var current = stat()
                if stat(known, &current) != 0 || UInt64(current.st_ino) != entry.inode || Int64(current.st_size) != entry.size {
                    close(entry.fd)
                    state.entries[known] = nil
                }
            }
            var fd: Int32
            if let entry = state.entries[path], entry.device == UInt64(info.st_dev), entry.inode == UInt64(info.st_ino),
                entry.size == Int64(info.st_size), entry.modified == info.st_mtim.tv_sec
            {
                fd = entry.fd
                state.entries[path]?.lastUsed = now
            } else {
                if let stale = state.entries.removeValue(forKey: path) { close(stale.fd) }
                fd = try Self.sealedCopy(of: path, size: Int64(info.st_size))
                state.entries[path] = Entry(
                    fd: fd, device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                    modified: info.st_mtim.tv_sec, lastUsed: now)
            }
            let duplicate = fcntl(fd, F_DUPFD_CLOEXEC, 0)
            guard duplicate >= 0 else { throw OmniRunError(.internalError, "cannot duplicate a descriptor: errno \(errno)") }
            let start = !state.sweeping
            state.sweeping = true
            return (duplicate, start)
        }
        if startSweeping { sweepWhileUsed() }
        return fd
    }

    /// Drops copies unused for `idleRelease`, checking every minute while any is kept.
    private func sweepWhileUsed() {
        let idle = idleRelease
        Task.detached { [weak self] in
            while let self {
                try? await Task.sleep(for: min(idle, .seconds(60)))
                let keepGoing = self.state.withLockedValue { state -> Bool in
                    let now = ContinuousClock.now
                    for (path, entry) in state.entries where now - entry.lastUsed > idle {
                        close(entry.fd)
                        state.entries[path] = nil
                    }
                    state.sweeping = !state.entries.isEmpty
                    return state.sweeping
                }
                if !keepGoing { return }
            }
        }
    }

    /// How many copies are kept (for tests).
    var count: Int { state.withLockedValue { $0.entries.count } }

    private static func sealedCopy(of path: String, size: Int64) throws -> Int32 {
        let source = open(path, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw OmniRunError(.internalError, "cannot open \(path): errno \(errno)") }
        defer { close(source) }
        let fd = omr_sealable_memfd("omnirun-snapshot-memory")
        guard fd >= 0 else { throw OmniRunError(.internalError, "memfd_create failed: errno \(errno)") }
        do {
            guard ftruncate(fd, off_t(size)) == 0 else { throw OmniRunError(.noSpace, "cannot size the snapshot memory copy: errno \(errno)") }
            // Only the parts of the file that hold data, and of those not the zero pages.
            let copied = omr_copy_sparse(source, fd, size)
            guard copied >= 0 else {
                throw OmniRunError(.noSpace, "copying \(path) into memory failed: errno \(-copied)")
            }
            guard omr_seal_read_only(fd) == 0 else { throw OmniRunError(.internalError, "sealing the snapshot memory copy failed: errno \(errno)") }
            // The file's pages were read once; the copy serves from now on.
            posix_fadvise(source, 0, 0, Int32(POSIX_FADV_DONTNEED))
            return fd
        } catch {
            close(fd)
            throw error
        }
    }
}
