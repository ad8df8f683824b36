import Foundation
import OmniRunError
import Testing

@testable import QEMUDriver

#if canImport(Glibc)
import Glibc
#endif

/// The layers QEMU is handed come from headers the server trusts, with formats their
/// referrer names: real qcow2 files made by `qemu-img`, and hostile ones.
@Suite("Disk chains and the console's cap")
struct DiskChainTests {
    let folder: String

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("chain-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    @Test func layersFollowTrustedHeadersWithTheirDeclaredFormats() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try qemuImg(["create", "-q", "-f", "raw", folder + "/base.raw", "16M"])
        try qemuImg(["create", "-q", "-f", "qcow2", "-b", folder + "/base.raw", "-F", "raw", folder + "/layer.qcow2"])
        try qemuImg(["create", "-q", "-f", "qcow2", "-b", "layer.qcow2", "-F", "qcow2", folder + "/top.qcow2"])
        let chain = try DiskChain.below(backingName: "top.qcow2", format: "qcow2", in: folder, trusting: geteuid())
        #expect(chain.layers.map(\.format) == ["qcow2", "qcow2", "raw"])
        #expect(chain.layers.map { ($0.path as NSString).lastPathComponent } == ["top.qcow2", "layer.qcow2", "base.raw"])
        try DiskChain.verify(overlay: folder + "/top.qcow2", names: "layer.qcow2")
        #expect(throws: OmniRunError.self) { try DiskChain.verify(overlay: folder + "/top.qcow2", names: "other.qcow2") }
        // Recorded and read back.
        try chain.write(into: folder)
        #expect(DiskChain.read(from: folder) == chain)
    }

    @Test func hostileHeadersAndFilesAreRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A backing name with a protocol is never followed.
        try qemuImg([
            "create", "-q", "-f", "qcow2", "-u", "-b", #"json:{"driver":"raw","file":{"driver":"nbd","host":"10.0.0.1"}}"#, "-F", "raw",
            folder + "/protocol.qcow2", "16M",
        ])
        #expect(throws: OmniRunError.self) { try DiskChain.layers(from: .init(path: folder + "/protocol.qcow2", format: "qcow2"), trusting: geteuid()) }
        // A raw disk whose guest wrote a qcow2 header naming another file stays raw.
        try qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw", folder + "/fake", "16M"])
        let raw = try DiskChain.layers(from: .init(path: folder + "/fake", format: "raw"), trusting: geteuid())
        #expect(raw.map(\.path) == [folder + "/fake"])
        // A layer QEMU's user could change is no layer.
        try qemuImg(["create", "-q", "-f", "raw", folder + "/theirs.raw", "1M"])
        chown(folder + "/theirs.raw", 65534, 65534)
        #expect(throws: OmniRunError.self) { try DiskChain.checkTrusted(folder + "/theirs.raw", owner: geteuid()) }
        chown(folder + "/theirs.raw", geteuid(), getegid())
        chmod(folder + "/theirs.raw", 0o666)
        #expect(throws: OmniRunError.self) { try DiskChain.checkTrusted(folder + "/theirs.raw", owner: geteuid()) }
        // An unsupported declared format, and a qcow2 layer that does not say its backing's format.
        #expect(throws: OmniRunError.self) { try DiskChain.layers(from: .init(path: folder + "/fake", format: "vmdk"), trusting: geteuid()) }
        // (qemu-img always writes the format: its extension is renamed to one nobody knows.)
        try qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", folder + "/fake", "-F", "raw", folder + "/unsaid.qcow2", "16M"])
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: folder + "/unsaid.qcow2")))
        let marker: [UInt8] = [0xe2, 0x79, 0x2a, 0xca]
        let at = try #require((0..<4096).first { Array(bytes[$0..<$0 + 4]) == marker })
        bytes[at..<at + 4] = [0x12, 0x34, 0x56, 0x78]
        try Data(bytes).write(to: URL(fileURLWithPath: folder + "/unsaid.qcow2"))
        #expect(try QCOW2Header.read(folder + "/unsaid.qcow2")?.backingFormat == nil)
        #expect(throws: OmniRunError.self) { try DiskChain.layers(from: .init(path: folder + "/unsaid.qcow2", format: "qcow2"), trusting: geteuid()) }
        // Implausible fields in a header.
        var head = [UInt8](repeating: 0, count: 120)
        head[0...3] = [0x51, 0x46, 0x49, 0xfb]
        head[7] = 3
        head[8...15] = [0, 0, 0, 0, 0, 0, 0x10, 0]  // offset 4096
        head[16...19] = [0, 0, 0x10, 0]  // 4096 bytes: more than QEMU allows
        #expect(throws: OmniRunError.self) { try QCOW2Header.parse(head, path: "hostile") { _, _ in [] } }
    }

    @Test func theConsoleIsCutToItsNewestHalf() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/console.log"
        var text = ""
        for line in 0..<40_000 { text += "line \(line) " + String(repeating: "x", count: 60) + "\n" }
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        #expect(size > 2 << 20)
        let removed = QEMUMachine.trimConsole(path, limit: 1 << 20)
        let after = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        #expect(removed > 0 && after <= (1 << 19) + 8192 && Int64(after) + removed == Int64(size), "\(size) → \(after)")
        #expect((try String(contentsOfFile: path, encoding: .utf8)).hasSuffix("line 39999 " + String(repeating: "x", count: 60) + "\n"))
        #expect(QEMUMachine.trimConsole(path, limit: 1 << 20) == 0)
    }
}
