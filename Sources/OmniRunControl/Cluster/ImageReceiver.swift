import Crypto
import Foundation
import NIOCore
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Writes a template's image as it arrives from another node: exactly the announced number
/// of bytes, hashed on the way (SHA-256), runs of zeros left as holes (images are sparse),
/// into a temporary file that becomes the image only once the digest matches. Anything else
/// — too many bytes, too few, another digest — removes the file and fails.
package struct ImageReceiver {
    let path: String
    let expectedBytes: Int64
    let expectedSHA256: String
    /// Keep the digest beside the file (`<path>.sha256`; files that never change).
    let keepsDigest: Bool

    package init(path: String, expectedBytes: Int64, expectedSHA256: String, keepsDigest: Bool = true) {
        self.path = path
        self.expectedBytes = expectedBytes
        self.expectedSHA256 = expectedSHA256
        self.keepsDigest = keepsDigest
    }

    /// A file's size in bytes (0 if it cannot be read).
    package static func size(ofFile path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.int64Value ?? 0
    }

    /// The SHA-256 of a file, read in 4 MiB pieces.
    package static func sha256(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw OmniRunError(.notFound, "\(path) is missing") }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Reads `body` to its end; on success the image is at `path`. `progress` hears the
    /// bytes received so far (for the log).
    package func receive<Body: AsyncSequence>(
        _ body: Body, progress: (Int64) -> Void = { _ in }
    ) async throws where Body.Element == ByteBuffer {
        let partial = path + ".partial"
        try? FileManager.default.removeItem(atPath: partial)
        let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OmniRunError(.internalError, "cannot write \(partial): errno \(errno)") }
        var closed = false
        defer {
            if !closed { close(fd) }
        }
        do {
            var hasher = SHA256()
            var received: Int64 = 0
            var lastReport: Int64 = 0
            for try await chunk in body {
                let (total, overflow) = received.addingReportingOverflow(Int64(clamping: chunk.readableBytes))
                guard !overflow, total <= expectedBytes else {
                    throw OmniRunError(.unavailable, "the template's image ran past its announced \(expectedBytes) bytes")
                }
                try chunk.withUnsafeReadableBytes { raw in
                    hasher.update(bufferPointer: raw)
                    try Self.write(raw, to: fd, at: received)
                }
                received = total
                if received - lastReport >= 256 << 20 {
                    lastReport = received
                    progress(received)
                }
            }
            guard received == expectedBytes else {
                throw OmniRunError(.unavailable, "the template's image ended after \(received) of \(expectedBytes) bytes")
            }
            let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            guard digest == expectedSHA256 else {
                throw OmniRunError(.unavailable, "the template's image does not match its SHA-256 (got \(digest), expected \(expectedSHA256))")
            }
            guard ftruncate(fd, off_t(expectedBytes)) == 0, fsync(fd) == 0 else {
                throw OmniRunError(.internalError, "cannot finish \(partial): errno \(errno)")
            }
            close(fd)
            closed = true
            guard rename(partial, path) == 0 else { throw OmniRunError(.internalError, "cannot move \(partial) into place: errno \(errno)") }
            if keepsDigest { try? expectedSHA256.write(toFile: path + ".sha256", atomically: true, encoding: .utf8) }
            progress(received)
        } catch {
            unlink(partial)
            throw error
        }
    }

    /// Writes `bytes` at `offset`, skipping whole 4 KiB blocks of zeros (they stay holes);
    /// consecutive blocks with data go out in one write.
    static func write(_ bytes: UnsafeRawBufferPointer, to fd: Int32, at offset: Int64) throws {
        let block = 4096
        var start = 0
        var run: Int?
        func flush(_ from: Int, _ to: Int) throws {
            var written = from
            while written < to {
                let n = pwrite(fd, bytes.baseAddress! + written, to - written, off_t(clamping: offset &+ Int64(clamping: written)))
                guard n > 0 else { throw OmniRunError(.internalError, "writing the template's image failed: errno \(errno)") }
                written += n
            }
        }
        while start < bytes.count {
            let end = min(start + block, bytes.count)
            let zero = UnsafeRawBufferPointer(rebasing: bytes[start..<end]).allSatisfy { $0 == 0 }
            if zero, let begun = run {
                try flush(begun, start)
                run = nil
            } else if !zero, run == nil {
                run = start
            }
            start = end
        }
        if let begun = run { try flush(begun, bytes.count) }
    }
}
