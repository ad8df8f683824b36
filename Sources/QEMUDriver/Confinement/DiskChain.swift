import Foundation
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// The read-only layers under a machine's own disk overlay, which QEMU gets as open
/// descriptors (it runs as a user that may not reach them by path).
///
/// The server never follows a backing-file name from a file QEMU could have written:
/// the layers are found from the top one the server chose (the snapshot's disk, the
/// image's root file system, a fork's frozen layer), reading headers only of files that
/// are the server's and writable by no one else. A machine's chain is recorded in its
/// folder (`disk-chain.json`, the server's file) for a later resume; when a disk QEMU
/// wrote becomes a layer (a snapshot, a fork, a template build step), its header must
/// name exactly the backing file the server gave it.
struct DiskChain: Codable, Equatable, Sendable {
    struct Layer: Codable, Equatable, Sendable {
        var path: String
        /// `qcow2` or `raw`.
        var format: String
    }

    /// The backing-file name written into the machine's overlay (as given to `qemu-img -b`).
    var backingName: String
    /// The backing layers, top first.
    var layers: [Layer]

    static let fileName = "disk-chain.json"
    static let maxDepth = 64

    /// The chain below an overlay made with `-b backingName -F format` (resolved from `directory`).
    static func below(backingName: String, format: String, in directory: String, trusting owner: uid_t?) throws -> DiskChain {
        let top = backingName.hasPrefix("/") ? backingName : directory + "/" + backingName
        return DiskChain(backingName: backingName, layers: try layers(from: Layer(path: top, format: format), trusting: owner))
    }

    /// `top` and every layer below it, each checked before its header is read. A layer's
    /// format is what its referrer says (the server for the top one, the backing-format
    /// field of a trusted header below), never guessed from its content: a raw disk
    /// whose guest wrote a qcow2 header into its first sector stays raw.
    static func layers(from top: Layer, trusting owner: uid_t?) throws -> [Layer] {
        var result: [Layer] = []
        var next: Layer? = top
        while let current = next {
            guard result.count < maxDepth else { throw OmniRunError(.machineFailed, "disk chain deeper than \(maxDepth) layers at \(top.path)") }
            guard current.format == "raw" || current.format == "qcow2" else {
                throw OmniRunError(.machineFailed, "disk layer \(current.path) has the unsupported format '\(current.format.prefix(20))'")
            }
            try checkTrusted(current.path, owner: owner)
            result.append(current)
            next = nil
            guard current.format == "qcow2" else { break }
            guard let header = try QCOW2Header.read(current.path) else {
                throw OmniRunError(.machineFailed, "disk layer \(current.path) is not a qcow2 file")
            }
            if let backing = header.backingName {
                guard let format = header.backingFormat else {
                    throw OmniRunError(.machineFailed, "disk layer \(current.path) does not say its backing file's format")
                }
                next = Layer(path: try resolve(backing, from: current.path), format: format)
            }
        }
        return result
    }

    /// A backing name as a path: relative names are relative to the referring file's
    /// folder; protocol names (`json:`, `nbd:` …) are refused.
    static func resolve(_ name: String, from file: String) throws -> String {
        if let colon = name.firstIndex(of: ":"), !name[..<colon].contains("/") {
            throw OmniRunError(.machineFailed, "\(file) names a backing file with a protocol ('\(name.prefix(40))')")
        }
        return name.hasPrefix("/") ? name : (file as NSString).deletingLastPathComponent + "/" + name
    }

    /// A layer QEMU's user could have changed is no layer: the server's own regular
    /// file, writable by nobody else (nil owner: no separate VMM user, nothing to check).
    static func checkTrusted(_ path: String, owner: uid_t?) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw OmniRunError(.notFound, "disk layer \(path) is missing") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw OmniRunError(.machineFailed, "disk layer \(path) is not a regular file") }
        guard let owner else { return }
        guard info.st_uid == owner, info.st_mode & 0o022 == 0 else {
            throw OmniRunError(
                .machineFailed, "disk layer \(path) is not the server's read-only file (owner \(info.st_uid), mode \(String(info.st_mode & 0o7777, radix: 8)))")
        }
    }

    /// Checks that the overlay QEMU wrote still names `backingName` (before it becomes a layer).
    static func verify(overlay: String, names backingName: String) throws {
        let header = try QCOW2Header.read(overlay)
        guard let header, header.backingName == backingName else {
            throw OmniRunError(
                .machineFailed, "the disk \(overlay) no longer names its backing file \(backingName): refused as a layer")
        }
    }

    func write(into directory: String) throws {
        let path = directory + "/" + Self.fileName
        try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: path + ".tmp"))
        _ = rename(path + ".tmp", path)
    }

    static func read(from directory: String) -> DiskChain? {
        guard let data = FileManager.default.contents(atPath: directory + "/" + fileName) else { return nil }
        return try? JSONDecoder().decode(DiskChain.self, from: data)
    }
}

/// The parts of a qcow2 header a chain needs (nil from `read`: not qcow2, i.e. raw).
struct QCOW2Header: Equatable {
    var backingName: String?
    var backingFormat: String?

    static func read(_ path: String) throws -> QCOW2Header? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw OmniRunError(.notFound, "cannot open \(path): errno \(errno)") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count >= 4 else { return nil }
        return try parse(Array(bytes.prefix(count)), path: path) { offset, length in
            var name = [UInt8](repeating: 0, count: length)
            let read = name.withUnsafeMutableBytes { pread(fd, $0.baseAddress, length, off_t(offset)) }
            return read == length ? name : nil
        }
    }

    /// `head`: the file's first bytes; `readAt` reads the backing name wherever it is.
    static func parse(_ head: [UInt8], path: String, readAt: (UInt64, Int) -> [UInt8]?) throws -> QCOW2Header? {
        func u32(_ at: Int) -> UInt32 { head[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) } }
        func u64(_ at: Int) -> UInt64 { head[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        guard head.count >= 4, u32(0) == 0x5146_49fb else { return nil }
        guard head.count >= 20 else { throw OmniRunError(.machineFailed, "\(path) has a truncated qcow2 header") }
        let offset = u64(8)
        let size = u32(16)
        guard offset != 0, size != 0 else { return QCOW2Header(backingName: nil, backingFormat: nil) }
        // QEMU's own limits: a name of at most 1023 bytes inside the first cluster.
        guard size <= 1023, offset <= 2 << 20 else {
            throw OmniRunError(.machineFailed, "\(path) has an implausible backing-file field")
        }
        guard let name = readAt(offset, Int(size)), let text = String(validating: name, as: UTF8.self), !text.contains("\0") else {
            throw OmniRunError(.machineFailed, "\(path) has an unreadable backing-file name")
        }
        return QCOW2Header(backingName: text, backingFormat: extensionText(head, type: 0xE279_2ACA))
    }

    /// A header extension's contents as text (the backing format is one), if it is within `head`.
    static func extensionText(_ head: [UInt8], type wanted: UInt32) -> String? {
        func u32(_ at: Int) -> UInt32? { at >= 0 && at + 4 <= head.count ? head[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) } : nil }
        guard let version = u32(4) else { return nil }
        // Version 2 headers are 72 bytes; version 3 says how long it is.
        var at = version >= 3 ? Int(u32(100) ?? 104) : 72
        for _ in 0..<64 {
            guard let type = u32(at), let length = u32(at + 4), type != 0 else { return nil }
            let start = at + 8
            let end = start + Int(length)
            guard length <= 4096, end <= head.count else { return nil }
            if type == wanted { return String(validating: head[start..<end], as: UTF8.self) }
            at = start + (Int(length) + 7) / 8 * 8
        }
        return nil
    }
}
