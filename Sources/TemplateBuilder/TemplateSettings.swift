import OmniRunError
import SandboxRuntime

/// The template settings that live outside the Dockerfile (the `settings` part of
/// `POST /templates`), as E2B's template config has them.
public struct TemplateSettings: Codable, Sendable, Equatable {
    /// The name sandboxes are created with (`Sandbox.create('my-template')`).
    public var name: String
    public var description: String?
    public var cpuCount: Int?
    public var memoryMB: Int?
    /// Root file system size; at least the base template's (it is grown, never shrunk).
    public var diskMB: Int?
    /// Started in the background (as the template's user, in its WORKDIR, with its ENV)
    /// before the snapshot is taken: the service every sandbox finds running. Without
    /// it, the Dockerfile's `ENTRYPOINT`/`CMD` is the start command.
    public var startCmd: String?
    /// Retried until it exits 0; the snapshot is taken then. Without it, the
    /// Dockerfile's `HEALTHCHECK CMD` is the ready check.
    public var readyCmd: String?
    /// Seconds the ready check may keep failing (default 120).
    public var readyTimeout: Int?
    /// Values for the Dockerfile's `ARG`s.
    public var buildArgs: [String: String]?
    /// Run every step again instead of reusing cached layers (`--no-cache`).
    public var noCache: Bool?

    public init(
        name: String, description: String? = nil, cpuCount: Int? = nil, memoryMB: Int? = nil, diskMB: Int? = nil,
        startCmd: String? = nil, readyCmd: String? = nil, readyTimeout: Int? = nil, buildArgs: [String: String]? = nil,
        noCache: Bool? = nil
    ) {
        self.name = name
        self.description = description
        self.cpuCount = cpuCount
        self.memoryMB = memoryMB
        self.diskMB = diskMB
        self.startCmd = startCmd
        self.readyCmd = readyCmd
        self.readyTimeout = readyTimeout
        self.buildArgs = buildArgs
        self.noCache = noCache
    }

    /// Limits a build may ask for.
    public static let maxCPUs = 8
    public static let memoryRange = 128...16_384
    public static let maxDiskMB = 32_768

    public func validate() throws {
        func bad(_ message: String) -> OmniRunError { OmniRunError(.invalidArgument, message) }
        guard ImageCatalog.isValidName(name) else {
            throw bad("invalid template name '\(name)': 1-64 lower-case letters, digits, '-', '_' or '.', starting with a letter or digit")
        }
        if let cpuCount, !(1...Self.maxCPUs).contains(cpuCount) { throw bad("cpuCount must be between 1 and \(Self.maxCPUs)") }
        if let memoryMB, !Self.memoryRange.contains(memoryMB) {
            throw bad("memoryMB must be between \(Self.memoryRange.lowerBound) and \(Self.memoryRange.upperBound)")
        }
        if let diskMB, !(512...Self.maxDiskMB).contains(diskMB) { throw bad("diskMB must be between 512 and \(Self.maxDiskMB)") }
        if let readyTimeout, !(1...3600).contains(readyTimeout) { throw bad("readyTimeout must be between 1 and 3600 seconds") }
        for (key, value) in [("startCmd", startCmd), ("readyCmd", readyCmd), ("description", description)] {
            if let value, value.utf8.count > 16_384 { throw bad("\(key) is longer than 16 KiB") }
        }
        if let buildArgs, buildArgs.count > 256 || buildArgs.keys.contains(where: { !Dockerfile.isName($0) }) {
            throw bad("buildArgs: at most 256, with names of letters, digits and '_'")
        }
    }
}
