import Foundation

/// The stand-in for the spec's "Docker container" row (no container engine here):
/// the template's own root filesystem, mounted read-only once, and each start a
/// new set of namespaces (mount, UTS, IPC, PID, network) plus chroot, as a
/// container runtime does before exec. Needs root (for the mount and namespaces).
struct ContainerStart {
    let rootfsImage: String
    private(set) var mountPoint = ""

    init(rootfsImage: String) { self.rootfsImage = rootfsImage }

    mutating func setUp() throws {
        guard getuid() == 0 else { throw BenchError("container-style start needs root (mount and namespaces)") }
        mountPoint = NSTemporaryDirectory() + "omnirun-bench-rootfs-\(getpid())"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let status = try Self.run("/bin/mount", ["-o", "loop,ro,noload", rootfsImage, mountPoint]).status
        guard status == 0 else {
            try? FileManager.default.removeItem(atPath: mountPoint)
            throw BenchError("cannot mount \(rootfsImage) (status \(status))")
        }
    }

    func tearDown() {
        guard !mountPoint.isEmpty else { return }
        _ = try? Self.run("/bin/umount", [mountPoint])
        try? FileManager.default.removeItem(atPath: mountPoint)
    }

    /// ms from spawning the container-style process to having read `ok` from it.
    func startEcho() throws -> Double {
        let started = ContinuousClock.now
        let (status, output) = try Self.run(
            "/usr/bin/unshare", ["--mount", "--uts", "--ipc", "--pid", "--net", "--fork", "chroot", mountPoint, "/bin/echo", "ok"])
        let elapsed = (ContinuousClock.now - started).milliseconds
        guard status == 0, output == "ok\n" else { throw BenchError("container-style start failed (\(status)): \(output)") }
        return elapsed
    }

    private static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
