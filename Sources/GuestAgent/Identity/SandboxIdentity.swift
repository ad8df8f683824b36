import AgentProtocol
import CAgentSupport
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Who this guest is right now. A restored guest starts with the template's identity
/// and learns its own through `/v1/init` before any user code runs.
actor SandboxIdentity {
    struct Settings: Sendable {
        var sandboxID: String?
        var defaultUser: String
        var env: [String: String]
        var envFileVars: [String: String]
        var defaultCwd: String? = nil
    }

    private var settings = Settings(sandboxID: nil, defaultUser: "user", env: [:], envFileVars: [:])
    private let logger: Logger
    /// False when the agent runs outside a VM (development): then the clock, RNG and
    /// hostname of the machine are left alone.
    private let ownsMachine: Bool

    init(ownsMachine: Bool, logger: Logger) {
        self.ownsMachine = ownsMachine
        self.logger = logger
    }

    func snapshot() -> Settings { settings }

    func apply(_ request: InitRequest) throws -> InitResponse {
        guard request.sandboxID.utf8.count <= 128, request.hostname.utf8.count <= 63 else {
            throw AgentFailure.badRequest("sandbox id or hostname too long")
        }
        let entropy = try AgentCoding.unbase64(request.entropy)
        guard entropy.count >= 32 else { throw AgentFailure.badRequest("at least 32 bytes of entropy are required") }
        var entropyAdded = false
        var machineID = ""
        if ownsMachine {
            // Order matters: reseed the kernel RNG before anything derives from it.
            let rc = entropy.withUnsafeBufferPointer { omr_add_entropy($0.baseAddress, Int32($0.count)) }
            entropyAdded = rc == 0
            if rc != 0 { logger.warning("adding entropy failed", metadata: ["errno": "\(rc)"]) }
            let clockRC = omr_set_clock(request.unixTimeNanos)
            if clockRC != 0 { logger.warning("setting the clock failed", metadata: ["errno": "\(clockRC)"]) }
            _ = request.hostname.withCString { sethostname($0, strlen($0)) }
            writeSmallFile("/etc/hostname", request.hostname + "\n")
            writeSmallFile(
                "/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\t\(request.hostname)\n::1\tlocalhost ip6-localhost ip6-loopback\n")
            machineID = Self.randomHex(16)
            writeSmallFile("/etc/machine-id", machineID + "\n", mode: 0o444)
        }
        settings.sandboxID = request.sandboxID
        settings.defaultUser = request.defaultUser
        settings.env = request.env
        settings.envFileVars = request.envFileVars ?? [:]
        settings.defaultCwd = request.defaultCwd
        if let path = request.envFile, let vars = request.envFileVars {
            try writeEnvFile(path: path, vars: vars, owner: request.defaultUser)
        }
        logger.info("sandbox identity set", metadata: ["sandbox": "\(request.sandboxID)"])
        return InitResponse(machineID: machineID, entropyAdded: entropyAdded)
    }

    private func writeEnvFile(path: String, vars: [String: String], owner: String) throws {
        var text = ""
        for (key, value) in vars.sorted(by: { $0.key < $1.key }) {
            guard Self.isEnvName(key) else { throw AgentFailure.badRequest("invalid variable name '\(key)'") }
            text += "export \(key)='\(Self.singleQuoteEscaped(value))'\n"
        }
        unlink(path)
        guard writeSmallFile(path, text, mode: 0o600) else {
            throw AgentFailure.errno(errno, "write", path: path)
        }
        if let user = try? UserDatabase.lookup(owner) {
            chown(path, user.uid, user.gid)
        }
        chmod(path, 0o600)
    }

    static func isEnvName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first == UInt8(ascii: "_") || (first | 0x20 >= 97 && first | 0x20 <= 122)
        else { return false }
        return name.utf8.allSatisfy { c in
            c == UInt8(ascii: "_") || (c >= 48 && c <= 57) || (c | 0x20 >= 97 && c | 0x20 <= 122)
        }
    }

    static func singleQuoteEscaped(_ value: String) -> String {
        var out = ""
        for ch in value {
            if ch == "'" { out += "'\\''" } else { out.append(ch) }
        }
        return out
    }

    static func randomHex(_ bytes: Int) -> String {
        var buffer = [UInt8](repeating: 0, count: bytes)
        _ = buffer.withUnsafeMutableBytes { omr_getrandom($0.baseAddress, UInt($0.count)) }
        let digits = Array("0123456789abcdef")
        return String(buffer.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xf)]] })
    }
}

