import Foundation
import LLMUpstreams
import OmniRunError
import SandboxRuntime
import SMTPClient
import TemplateBuilder

/// Settings of `omnirun serve`. Each is filled from a flag, else the environment
/// variable named beside it, else the default here.
public struct ServerConfiguration: Sendable {
    /// `--host` / `OMNIRUN_HOST`.
    public var host: String = "127.0.0.1"
    /// `--port` / `OMNIRUN_PORT`.
    public var port: Int = 8080
    /// `--data-dir` / `OMNIRUN_DATA_DIR`: snapshots, sandboxes, the SQLite file.
    public var dataDirectory: String
    /// `--database` / `OMNIRUN_DATABASE`: `sqlite:///path` (default: `<data>/omnirun.db`) or `postgres://…`.
    public var databaseURL: String?
    /// `--public-url` / `OMNIRUN_PUBLIC_URL`: how clients reach this server (signed URLs).
    public var publicURL: String?
    /// `OMNIRUN_IDLE_TIMEOUT`: seconds without activity before a sandbox is killed (docs: 15 min).
    public var idleTimeoutSeconds: Int64 = 15 * 60
    /// `OMNIRUN_CONCURRENT_LIMIT`: running sandboxes per account for new accounts (docs: 3).
    public var defaultConcurrentLimit: Int = 3
    /// `OMNIRUN_MAX_SANDBOXES`: running sandboxes on this node, all accounts together.
    public var maxSandboxes: Int = 64
    /// `--node-id` / `OMNIRUN_NODE_ID`: this node's name in the cluster (docs/multi-node.md).
    public var nodeID: String = "node-1"
    /// `--region` / `OMNIRUN_REGION`: the region this node's sandboxes are in.
    public var region: String = "local"
    /// `--advertise-url` / `OMNIRUN_ADVERTISE_URL`: how other nodes reach this one.
    public var advertiseURL: String?
    /// `OMNIRUN_NODE_LEASE` (seconds): how long a renewed lease lasts; a node whose lease
    /// ran out is down.
    public var nodeLease: Duration = .seconds(10)
    /// How often the lease is renewed (a fifth of the lease).
    public var nodeLeaseRenewal: Duration { .milliseconds(max(nodeLease.components.seconds * 200, 200)) }
    /// `OMNIRUN_NODE_LOST_GRACE` (seconds): after the lease, how long before a down node's
    /// sandboxes are ended as `lost`.
    public var nodeLostGrace: Duration = .seconds(20)
    /// `OMNIRUN_METRICS_INTERVAL` (seconds; 0 = off): how often each running sandbox's
    /// metrics are sampled.
    public var metricsInterval: Duration? = .seconds(5)
    /// `OMNIRUN_WEBHOOK_ALLOW_LOOPBACK=1`: webhooks may go to loopback and link-local addresses.
    public var webhookAllowLoopback = false
    /// `OMNIRUN_WEBHOOK_ALLOW_PRIVATE=cidr[,cidr…]`: private ranges (RFC 1918, CGNAT, IPv6
    /// unique local, …) webhooks may go to; default none.
    public var webhookAllowPrivate = ""
    /// `OMNIRUN_WEBHOOK_RETRY_BASE_MS`: the first retry's delay (doubling after each attempt).
    public var webhookRetryBase: Duration = .seconds(2)
    /// How often timeouts and idle sandboxes are checked.
    public var reaperInterval: Duration = .seconds(1)
    /// Largest JSON request body.
    public var maxJSONBody: Int = 16 << 20
    /// Largest file read as text through `GET /files`.
    public var maxTextFile: Int = 32 << 20
    /// `OMNIRUN_CONTEXT_OUTPUT_LIMIT`: most bytes a context's non-streaming execute collects
    /// (output, results and errors together; 64 MiB, as a command's output).
    public var maxContextOutput: Int = 64 << 20
    /// Longest a foreground command may run (`timeout` field; SDK default 60 s).
    public var maxCommandTimeoutSeconds: Int64 = 3600
    /// The LLM proxy: upstreams, prices, free tier, cap and rate (see `LLMConfiguration.load`).
    public var llm = LLMConfiguration()
    /// Where the built-in templates' sources are (`OMNIRUN_TEMPLATES_DIR`, else the checkout's).
    public var builtInTemplates = BuiltInTemplates(directory: nil)
    /// The upstreams' API keys, by the environment variable each upstream names
    /// (`apiKeyEnv`): read with the rest of the configuration, never again.
    public var llmKeys: [String: String] = [:]
    /// The first account's email (`OMNIRUN_OWNER_EMAIL`).
    public var ownerEmail = "owner@localhost"
    /// `OMNIRUN_SMTP_*`: where sign-in mail goes; nil writes it to `<data>/outbox` and the log.
    public var smtp: SMTPConfiguration?
    /// `OMNIRUN_MAIL_FROM`: `From:` of sign-in mail when SMTP has no sender of its own.
    public var mailSender = "OmniRun <noreply@localhost>"
    /// `OMNIRUN_MASTER_KEY_FILE`: the key that wraps every vault's data key (default `<data>/master.key`).
    public var masterKeyPath: String?
    public var signIn = SignInSettings()
    /// `OMNIRUN_TRUSTED_PROXIES`: proxies whose `X-Forwarded-For` is believed (default none).
    public var trustedProxies = TrustedProxies()
    /// Per-account quotas of paused sandboxes and queued template builds; see `QuotaSettings`.
    public var quotas = QuotaSettings()
    /// Largest build context (the tar of `POST /templates`).
    public var maxBuildContext: Int = 512 << 20
    /// `OMNIRUN_BUILD_EGRESS`: what the build machines of template `RUN` steps may reach:
    /// `open` (default: what sandboxes with internet access reach), `none` (a network card
    /// that reaches nothing), `off` (no network card), or a comma-separated allow-list of
    /// host names (`*.example.com`) and IPv4 addresses/CIDRs (the operator's package mirrors).
    public var buildEgress: BuildEgress = .open
    /// `OMNIRUN_BUILD_CA_FILE`: PEM certificates that template build steps trust besides the
    /// image's (a TLS-inspecting proxy between this host and the registries): default the
    /// host's bundle `/etc/ssl/certs/ca-certificates.crt` when it exists, `none` for none.
    public var buildCertificates: String? = ServerConfiguration.hostCertificateBundle

    /// The host's CA bundle (Debian's), if it has one.
    public static var hostCertificateBundle: String? {
        let path = "/etc/ssl/certs/ca-certificates.crt"
        return FileManager.default.isReadableFile(atPath: path) ? path : nil
    }
    /// The preview gateway (exposures and `{sandboxID}-{port}.{domain}`); see `PreviewSettings`.
    public var preview = PreviewSettings()
    /// Connection caps and timeouts of the API, the preview gateway and the host gateways.
    public var limits = ConnectionLimits()

    /// `OMNIRUN_CONSOLE_DIR`: the web console's files (HTML, ES modules, CSS); default: the
    /// `console` folder of the source tree the binary was built in, else
    /// `/usr/local/share/omnirun/console` or `/usr/share/omnirun/console` (`make install`).
    /// Nil: no console (the API alone).
    public var consoleDirectory: String? = ServerConfiguration.defaultConsoleDirectory()
    /// `OMNIRUN_XTERM_DIR`: xterm.js for the console's terminal (default
    /// `<cache>/console-vendor/xterm`, where `scripts/console-vendor.sh` puts it; an installed
    /// console's own `vendor/xterm` comes first).
    public var xtermDirectory = ImageCatalog.defaultCacheDirectory(environment: ProcessInfo.processInfo.environment) + "/console-vendor/xterm"

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }

    /// The first of: `console` beside the source tree this binary was built in
    /// (`.build/<config>/omnirun` → the tree), `/usr/share/omnirun/console`.
    public static func defaultConsoleDirectory(executable: String = CommandLine.arguments.first ?? "") -> String? {
        var candidates: [String] = []
        let binary = URL(fileURLWithPath: executable).resolvingSymlinksInPath()
        var folder = binary.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(folder.path + "/console")
            folder = folder.deletingLastPathComponent()
        }
        candidates += ["/usr/local/share/omnirun/console", "/usr/share/omnirun/console"]
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/index.html") }
    }

    public var resolvedMasterKeyPath: String {
        masterKeyPath ?? dataDirectory + "/master.key"
    }

    public var resolvedDatabaseURL: String {
        databaseURL ?? "sqlite://\(dataDirectory)/omnirun.db"
    }

    public var baseURL: String {
        publicURL ?? "http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(port)"
    }
}

/// Where the preview gateway listens and the URLs it hands out.
public struct PreviewSettings: Sendable {
    /// `OMNIRUN_PREVIEW_DOMAIN`: hosts are `{name}.{domain}`. The default `localhost` needs no
    /// DNS on one box: browsers and curl resolve every `*.localhost` to loopback.
    public var domain = "localhost"
    /// `OMNIRUN_PREVIEW_PORT`: the gateway's port (0: a free port; -1: no gateway). When it
    /// is not set and 8081 is taken, a free port is used (and named in the URLs).
    public var port = 8081
    public var portIsExplicit = false
    /// The port the gateway listens on once bound (what other nodes forward to); nil: none.
    public var listeningPort: Int?
    /// The region named in handed-out preview hosts (`{name}.{region}.{domain}`): the node's
    /// region unless it is the default `local`.
    public var region: String?
    /// `OMNIRUN_PREVIEW_PUBLIC_PORT`: the port in handed-out URLs when a proxy in front listens
    /// elsewhere (80 or 443 are left out of URLs); default: `port`.
    public var publicPort: Int?
    /// `OMNIRUN_PREVIEW_SCHEME`: `http` (default) or `https` when a proxy in front terminates TLS.
    public var scheme = "http"
    /// Default and largest lifetime of an exposure, in seconds.
    public var defaultTTLSeconds: Int64 = 3600
    public var maxTTLSeconds: Int64 = 7 * 24 * 3600
    /// Live exposures per sandbox.
    public var maxExposuresPerSandbox = 32

    public init() {}

    public mutating func apply(_ env: [String: String]) throws {
        if let domain = env["OMNIRUN_PREVIEW_DOMAIN"], !domain.isEmpty {
            let lowered = domain.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
            guard !lowered.isEmpty, lowered.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }) else {
                throw OmniRunError(.invalidArgument, "OMNIRUN_PREVIEW_DOMAIN must be a DNS name")
            }
            self.domain = lowered
        }
        if let text = env["OMNIRUN_PREVIEW_PORT"], !text.isEmpty {
            guard let port = Int(text), port >= -1, port <= 65535 else {
                throw OmniRunError(.invalidArgument, "OMNIRUN_PREVIEW_PORT must be a port, 0 (any) or -1 (off)")
            }
            self.port = port
            portIsExplicit = true
        }
        if let text = env["OMNIRUN_PREVIEW_PUBLIC_PORT"], !text.isEmpty {
            guard let port = Int(text), port > 0, port <= 65535 else {
                throw OmniRunError(.invalidArgument, "OMNIRUN_PREVIEW_PUBLIC_PORT must be a port")
            }
            publicPort = port
        }
        if let scheme = env["OMNIRUN_PREVIEW_SCHEME"], !scheme.isEmpty {
            guard scheme == "http" || scheme == "https" else {
                throw OmniRunError(.invalidArgument, "OMNIRUN_PREVIEW_SCHEME must be http or https")
            }
            self.scheme = scheme
        }
    }
}
