import CVMMLauncher
import Glibc
import Foundation
import NIOConcurrencyHelpers
import OmniRunError

/// What a restore can skip because the guest it brings back is booted already.
///
/// - The kernel: QEMU's x86 loader reads a bzImage whole into its heap whatever happens
///   next (14 MiB for our kernel, private to each VMM for as long as it runs), though an
///   incoming migration never boots it. A restore gets the kernel's header only (its
///   setup sectors and one page), which describes the same machine to the loader.
/// - `qemu-img create`: every overlay on one snapshot's disk is the same few clusters, so
///   the first is kept in memory and later ones are written from it, without a process.
enum RestoreShortcuts {
    /// The header of a bzImage as a sealed in-memory file, or nil when `kernel` is not a
    /// bzImage (an ELF kernel is loaded by its segments, not whole).
    static func kernelHeader(of kernel: String) throws -> Int32? {
        // Read once per kernel file (a file replaced at the same path is read again).
        let key = identity(of: kernel)
        let cached = key.flatMap { key in headers.withLockedValue { $0[key] } }
        let header = try cached ?? readHeader(of: kernel)
        if let key, cached == nil { headers.withLockedValue { $0[key] = header } }
        guard !header.isEmpty else { return nil }
        let fd = omr_sealable_memfd("omnirun-kernel-header")
        guard fd >= 0 else { throw OmniRunError(.internalError, "memfd_create failed: errno \(errno)") }
        let written = header.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == header.count, omr_seal_read_only(fd) == 0, lseek(fd, 0, SEEK_SET) == 0 else {
            close(fd)
            throw OmniRunError(.internalError, "writing the kernel header failed: errno \(errno)")
        }
        return fd
    }

    /// Kernels' headers by file identity; empty for a file that is not a bzImage.
    private static let headers = NIOLockedValueBox<[String: [UInt8]]>([:])

    /// A bzImage's setup sectors and one page; empty when `kernel` is not a bzImage.
    private static func readHeader(of kernel: String) throws -> [UInt8] {
        guard let file = FileHandle(forReadingAtPath: kernel) else {
            throw OmniRunError(.notFound, "cannot open the kernel \(kernel)")
        }
        defer { try? file.close() }
        let boot = [UInt8](try file.read(upToCount: 1024) ?? Data())
        // "HdrS" at 0x202 marks the boot protocol's header; 0x1f1 holds the setup sectors.
        guard boot.count >= 0x206, boot[0x202] == 0x48, boot[0x203] == 0x64, boot[0x204] == 0x72, boot[0x205] == 0x53 else {
            return []
        }
        let setupSectors = boot[0x1f1] == 0 ? 4 : Int(boot[0x1f1])
        let length = (setupSectors + 1) * 512 + 4096
        try file.seek(toOffset: 0)
        let header = [UInt8](try file.read(upToCount: length) ?? Data())
        return header.count == length ? header : []
    }

    /// Empty overlays by backing file and format (each a few hundred KiB at most).
    private static let overlays = NIOLockedValueBox<[String: [UInt8]]>([:])
    /// More than this is not kept (a node with very many templates writes them with qemu-img).
    private static let overlayCacheLimit = 64

    /// The key of an overlay: the backing file as it is now (a file replaced at the same
    /// path is another disk).
    private static func key(backing: String, format: String) -> String? {
        identity(of: backing).map { "\(format)|\($0)" }
    }

    /// An absolute path with its inode, size and modification time (nil: not there).
    private static func identity(of path: String) -> String? {
        var info = stat()
        guard path.hasPrefix("/"), stat(path, &info) == 0 else { return nil }
        return "\(path)|\(info.st_ino)|\(info.st_size)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }

    static func overlay(backing: String, format: String) -> [UInt8]? {
        guard let key = key(backing: backing, format: format) else { return nil }
        return overlays.withLockedValue { $0[key] }
    }

    /// Remembers the overlay `qemu-img` just made over an absolute `backing` path.
    static func remember(overlay path: String, backing: String, format: String) {
        guard let key = key(backing: backing, format: format), let data = FileManager.default.contents(atPath: path),
            data.count <= 4 << 20
        else { return }
        overlays.withLockedValue {
            if $0.count >= overlayCacheLimit { $0.removeAll() }
            $0[key] = [UInt8](data)
        }
    }

    /// Writes a new overlay from `bytes` (created, never over an existing file).
    static func write(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw OmniRunError(.machineFailed, "cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else { throw OmniRunError(.noSpace, "writing \(path) failed: errno \(errno)") }
            offset += written
        }
    }
}
