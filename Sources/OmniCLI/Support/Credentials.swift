import Foundation

/// Where `omni` keeps the server URL and API key: `$OMNI_CONFIG_DIR/credentials.json`
/// (default `~/.config/omnirun`), written with mode 0600 in a 0700 folder.
struct Credentials: Codable {
    var apiUrl: String
    var apiKey: String
    var email: String?

    static var directory: String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["OMNI_CONFIG_DIR"], !dir.isEmpty { return dir }
        let base = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ((env["HOME"] ?? NSHomeDirectory()) + "/.config")
        return base + "/omnirun"
    }

    static var path: String { directory + "/credentials.json" }

    static func load() -> Credentials? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(Credentials.self, from: data)
    }

    func save() throws {
        let manager = FileManager.default
        try manager.createDirectory(atPath: Self.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writePrivateFile(Self.path, try encoder.encode(self))
    }

    static func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Writes `data` to `path` atomically with mode 0600: created 0600 before anything secret is
/// written, so it is never readable by others; then renamed over the old file.
func writePrivateFile(_ path: String, _ data: Data) throws {
    let manager = FileManager.default
    let temporary = path + ".tmp-\(getpid())"
    guard manager.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]) else {
        throw CLIError("cannot write \(temporary)")
    }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
    try handle.write(contentsOf: data)
    try handle.close()
    guard rename(temporary, path) == 0 else { throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))") }
}
