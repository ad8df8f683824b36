import Foundation
import Testing

/// Runs the host's `qemu-img` and expects it to succeed.
func qemuImg(_ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "qemu-img \(arguments)")
}
