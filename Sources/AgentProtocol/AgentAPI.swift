#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The host <-> guest wire contract, version 2.
///
/// The host speaks HTTP/2 (cleartext, prior knowledge) to the guest agent over the
/// virtio-serial port named `omnirun.0`. Every operation is one HTTP/2 stream:
/// JSON requests and responses, raw bodies for file contents and tunnels, and
/// newline-delimited JSON for event streams (process output, directory watches).
/// Traffic that starts in the guest (code calling the LLM proxy) travels the same
/// connection in reverse: the host keeps `gatewayAccept` requests waiting, and the
/// agent answers one each time a program connects to the host gateway address.
/// This module is the only code the host and the guest share.
///
/// Version 2 added the host gateway (`gatewayAccept`, `HostGateway`).
public enum AgentAPI {
    /// Bumped on any incompatible change; both sides send it in `x-omnirun-agent-api`.
    public static let version = 2
    public static let versionHeader = "x-omnirun-agent-api"
    /// Name of the virtio-serial port the agent serves on.
    public static let portName = "omnirun.0"
    /// The line the agent writes to the console once it is parked after `prepareSnapshot`.
    public static let snapshotParkedMarker = "omnirun-agent: parked for a snapshot"
    /// Content type of newline-delimited JSON event streams.
    public static let eventStreamContentType = "application/x-ndjson"

    public enum Path {
        public static let health = "/v1/health"
        public static let initialize = "/v1/init"
        public static let prepareSnapshot = "/v1/snapshot/prepare"
        public static let shutdown = "/v1/shutdown"
        /// GET: a `GuestMetrics`.
        public static let metrics = "/v1/metrics"
        /// POST a `ClockRequest`: sets the wall clock.
        public static let clock = "/v1/clock"

        public static let processStart = "/v1/process/start"
        public static let processConnect = "/v1/process/connect"
        public static let processInput = "/v1/process/input"
        public static let processSignal = "/v1/process/signal"
        public static let processResize = "/v1/process/resize"
        public static let processList = "/v1/process/list"
        /// GET, query `pid`: a `ProcessOutput`.
        public static let processOutput = "/v1/process/output"

        /// GET, query `path`, `user`: the raw file contents.
        public static let fileRead = "/v1/files/read"
        /// PUT, query `path`, `user`, `mode` (octal), `append`: raw body is the content.
        public static let fileWrite = "/v1/files/write"
        /// GET, query `path`: a `FileEntry`.
        public static let fileStat = "/v1/files/stat"
        /// GET, query `path`, `depth`: `[FileEntry]`.
        public static let fileList = "/v1/files/list"
        public static let fileMakeDirectory = "/v1/files/mkdir"
        public static let fileMove = "/v1/files/move"
        public static let fileRemove = "/v1/files/remove"
        /// GET, query `path`, `recursive`: an event stream of `WatchEvent`.
        public static let fileWatch = "/v1/files/watch"

        /// POST, query `port`: the request body is sent to 127.0.0.1:`port` in the
        /// guest and what that socket answers is the response body.
        public static let tunnel = "/v1/tunnel"

        /// POST, the reverse of `tunnel`: the agent answers (200, then a raw body) once a
        /// program in the guest connects to `HostGateway`; what the program sends is the
        /// response body, and the request body is passed to the program. Until then the
        /// request waits; the host keeps a few of them open.
        public static let gatewayAccept = "/v1/gateway/accept"
    }

    /// The fixed address inside every guest through which programs reach the host's
    /// services (the LLM proxy at `http://127.0.0.1:18080/llm/v1`), with no network device.
    public enum HostGateway {
        public static let host = "127.0.0.1"
        public static let port = 18080
        /// Guest connections waiting for the host beyond this many are refused.
        public static let maxWaiting = 128
    }
}

/// Error body of every non-2xx agent answer.
public struct AgentErrorBody: Codable, Sendable, Equatable {
    /// One of `AgentErrorCode`.
    public var code: String
    public var message: String
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

public enum AgentErrorCode {
    public static let notFound = "not_found"
    public static let invalidArgument = "invalid_argument"
    public static let conflict = "conflict"
    public static let permissionDenied = "permission_denied"
    public static let noSpace = "no_space"
    public static let readOnly = "read_only"
    public static let failed = "failed"
}

public struct HealthResponse: Codable, Sendable {
    public var apiVersion: Int
    public var sandboxID: String?
    public var uptimeMillis: Int64
    public var processes: Int
    public init(apiVersion: Int, sandboxID: String?, uptimeMillis: Int64, processes: Int) {
        self.apiVersion = apiVersion
        self.sandboxID = sandboxID
        self.uptimeMillis = uptimeMillis
        self.processes = processes
    }
}

/// Sent once after every restore, before any user code runs: the sandbox's new
/// identity, its wall clock and fresh entropy for the guest kernel's RNG.
public struct InitRequest: Codable, Sendable {
    public var sandboxID: String
    public var hostname: String
    /// Environment added to every process the agent starts.
    public var env: [String: String]
    /// Wall clock at the host, nanoseconds since 1970.
    public var unixTimeNanos: Int64
    /// Base64 of (at least 32) random bytes from the host.
    public var entropy: String
    /// Default user for processes and files when a request names none.
    public var defaultUser: String
    /// Optional file written as `export K='v'` lines (mode 0600, owned by the default user)
    /// and sourced into every process's environment.
    public var envFile: String?
    public var envFileVars: [String: String]?
    /// Working directory of processes that name none (a template's WORKDIR); else the user's home.
    public var defaultCwd: String?

    public init(
        sandboxID: String, hostname: String, env: [String: String], unixTimeNanos: Int64,
        entropy: String, defaultUser: String, envFile: String? = nil, envFileVars: [String: String]? = nil,
        defaultCwd: String? = nil
    ) {
        self.sandboxID = sandboxID
        self.hostname = hostname
        self.env = env
        self.unixTimeNanos = unixTimeNanos
        self.entropy = entropy
        self.defaultUser = defaultUser
        self.envFile = envFile
        self.envFileVars = envFileVars
        self.defaultCwd = defaultCwd
    }
}

public struct InitResponse: Codable, Sendable {
    public var machineID: String
    public var entropyAdded: Bool
    public init(machineID: String, entropyAdded: Bool) {
        self.machineID = machineID
        self.entropyAdded = entropyAdded
    }
}
