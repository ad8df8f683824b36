import Foundation
import OmniRunCore
import SandboxRuntime
import TestSupport
import Testing

@testable import QEMUDriver

#if canImport(Glibc)
import Glibc
#endif

/// What a restore skips: the kernel (its header stands in), `qemu-img` (overlays written
/// from the first one), and the separate health exchange (the identity comes first).
@Suite("Restore shortcuts")
struct RestoreShortcutTests {
    @Test func kernelHeaderIsTheBzImagesSetupAndNothingElse() throws {
        let catalog = ImageCatalog(cacheDirectory: ImageCatalog.defaultCacheDirectory(environment: ProcessInfo.processInfo.environment))
        let kernel = try catalog.image(for: "playground").kernel
        let whole = try #require(FileManager.default.contents(atPath: kernel))
        let fd = try #require(try RestoreShortcuts.kernelHeader(of: kernel), "the test kernel is a bzImage")
        defer { close(fd) }
        var info = stat()
        #expect(fstat(fd, &info) == 0)
        let setupSectors = whole[0x1f1] == 0 ? 4 : Int(whole[0x1f1])
        #expect(Int(info.st_size) == (setupSectors + 1) * 512 + 4096)
        #expect(Int(info.st_size) < whole.count / 100, "the header is not a small part of the kernel")
        var header = [UInt8](repeating: 0, count: Int(info.st_size))
        #expect(pread(fd, &header, header.count, 0) == header.count)
        #expect(header == [UInt8](whole.prefix(header.count)))
        // Sealed: nobody (QEMU included) can change or grow it.
        #expect(pwrite(fd, "x", 1, 0) < 0 && errno == EPERM, "the header can be written to")
        #expect(ftruncate(fd, off_t(info.st_size) * 2) < 0 && errno == EPERM, "the header can grow")
        #expect(ftruncate(fd, 0) < 0 && errno == EPERM, "the header can shrink")

        // Anything that is not a bzImage (an ELF kernel, a short or foreign file) keeps the whole file.
        let folder = FileManager.default.temporaryDirectory.path + "/kernel-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for (name, bytes) in [("elf", [0x7f, 0x45, 0x4c, 0x46] + [UInt8](repeating: 0, count: 2000)), ("short", [UInt8](whole.prefix(0x204)))] {
            try Data(bytes).write(to: URL(fileURLWithPath: "\(folder)/\(name)"))
            #expect(try RestoreShortcuts.kernelHeader(of: "\(folder)/\(name)") == nil, "\(name)")
        }
    }

    /// An overlay written from the remembered one is the file `qemu-img` makes; a backing
    /// file replaced at the same path is another disk, whose overlay is not remembered yet.
    @Test func overlaysComeFromTheFirstAndFollowTheBackingFile() throws {
        let folder = FileManager.default.temporaryDirectory.path + "/overlay-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let backing = folder + "/base.qcow2"
        try qemuImg(["create", "-q", "-f", "qcow2", backing, "64M"])
        try qemuImg(["create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", folder + "/first.qcow2"])
        #expect(RestoreShortcuts.overlay(backing: backing, format: "qcow2") == nil)
        RestoreShortcuts.remember(overlay: folder + "/first.qcow2", backing: backing, format: "qcow2")
        let remembered = try #require(RestoreShortcuts.overlay(backing: backing, format: "qcow2"))
        try RestoreShortcuts.write(remembered, to: folder + "/second.qcow2")
        #expect(FileManager.default.contents(atPath: folder + "/second.qcow2") == FileManager.default.contents(atPath: folder + "/first.qcow2"))
        // qemu-img reads it as an overlay of that backing file.
        try qemuImg(["check", "-q", folder + "/second.qcow2"])
        // Never over an existing file (a link planted in a machine's folder included).
        #expect(throws: (any Error).self) { try RestoreShortcuts.write(remembered, to: folder + "/first.qcow2") }
        try FileManager.default.createSymbolicLink(atPath: folder + "/planted.qcow2", withDestinationPath: folder + "/target")
        #expect(throws: (any Error).self) { try RestoreShortcuts.write(remembered, to: folder + "/planted.qcow2") }
        #expect(!FileManager.default.fileExists(atPath: folder + "/target"))
        // The backing file replaced (another size): not the remembered disk.
        try FileManager.default.removeItem(atPath: backing)
        try qemuImg(["create", "-q", "-f", "qcow2", backing, "128M"])
        #expect(RestoreShortcuts.overlay(backing: backing, format: "qcow2") == nil)
    }

    /// A restored machine works with the header for a kernel and keeps no copy of the
    /// kernel in its VMM: its memory has no resident region the kernel's size (less its setup sectors, rounded to pages).
    @Test func restoredMachineHoldsNoCopyOfTheKernel() async throws {
        let runtime = try await TestRuntime.runtime()
        let kernel = try runtime.catalog.image(for: "playground").kernel
        let kernelKiB = (try FileManager.default.attributesOfItem(atPath: kernel)[.size] as? Int ?? 0) / 1024
        let sandbox = try await CreateGate.shared.run { try await runtime.create(SandboxSpec(template: "playground")) }
        defer { Task { await runtime.destroy(sandbox.id) } }
        #expect(try await sandbox.run("echo ok; hostname").stdoutText == "ok\n\(sandbox.id.hostname)\n")
        // Read to the end (a /proc file has no size to read up to).
        let handle = try #require(FileHandle(forReadingAtPath: "/proc/\(sandbox.machine.processID)/smaps"))
        let smaps = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        try handle.close()
        #expect(smaps.count > 20_000, "a VMM has many mappings")
        // Each mapping's header line, then its "Rss:" line: none is the kernel's size (± 64 KiB).
        var size = 0
        var kernelSized: [String] = []
        for line in smaps.split(separator: "\n") {
            if let range = line.split(separator: " ").first, range.contains("-"), line.split(separator: " ").count >= 5 {
                let bounds = range.split(separator: "-").compactMap { UInt64($0, radix: 16) }
                size = bounds.count == 2 ? Int((bounds[1] - bounds[0]) / 1024) : 0
            } else if line.hasPrefix("Rss:"), let rss = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }),
                abs(size - kernelKiB) <= 64, rss > kernelKiB / 2
            {
                kernelSized.append("\(size) KiB mapping, \(rss) KiB resident")
            }
        }
        #expect(kernelSized.isEmpty, "the VMM holds a kernel-sized copy: \(kernelSized)")
        await runtime.destroy(sandbox.id)
    }
}
