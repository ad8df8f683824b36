import Foundation
import Testing

@testable import SandboxRuntime

@Suite("Disk use of paused sandboxes")
struct DiskUsageTests {
    @Test func aFileAndItsFolderCountTheirBlocks() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("du-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/paused.state"
        try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: file))
        let ofFile = SandboxRuntime.diskUsage(of: file)
        #expect(ofFile >= 1 << 20)
        #expect(SandboxRuntime.diskUsage(of: folder) >= ofFile)
        #expect(SandboxRuntime.diskUsage(of: folder + "/missing") == 0)
    }
}
