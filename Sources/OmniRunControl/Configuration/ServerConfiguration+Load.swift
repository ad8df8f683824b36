import Foundation
import OmniRunError
import SandboxRuntime
import TemplateBuilder

extension ServerConfiguration {
    /// What the command line says (each wins over its environment variable).
    public struct Arguments: Sendable {
        public var host: String?
        public var port: Int?
        public var databaseURL: String?
        public var publicURL: String?
        public var idleTimeoutSeconds: Int64?
        public var nodeID: String?
        public var region: String?
        public var advertiseURL: String?

        public init(
            host: String? = nil, port: Int? = nil, databaseURL: String? = nil, publicURL: String? = nil, idleTimeoutSeconds: Int64? = nil,
            nodeID: String? = nil, region: String? = nil, advertiseURL: String? = nil
        ) {
            self.host = host
            self.port = port
            self.databaseURL = databaseURL
            self.publicURL = publicURL
            self.idleTimeoutSeconds = idleTimeoutSeconds
            self.nodeID = nodeID
            self.region = region
            self.advertiseURL = advertiseURL
        }
    }

    /// The server's whole configuration, read once from the environment and the command
    /// line (`omnirun serve`); nothing else in the server reads the environment. Each
    /// variable is documented where it is used (docs/server.md lists them all).
    public static func load(environment env: [String: String], dataDirectory: String, arguments: Arguments) throws -> ServerConfiguration {
        var configuration = ServerConfiguration(dataDirectory: dataDirectory)
        try configuration.apply(environment: env, arguments: arguments)
        return configuration
    }

    private mutating func apply(environment env: [String: String], arguments: Arguments) throws {
        host = arguments.host ?? env["OMNIRUN_HOST"] ?? host
        port = arguments.port ?? env["OMNIRUN_PORT"].flatMap { Int($0) } ?? port
        databaseURL = arguments.databaseURL ?? env["OMNIRUN_DATABASE"]
        publicURL = arguments.publicURL ?? env["OMNIRUN_PUBLIC_URL"]
        idleTimeoutSeconds = arguments.idleTimeoutSeconds ?? env["OMNIRUN_IDLE_TIMEOUT"].flatMap { Int64($0) } ?? idleTimeoutSeconds
        if let limit = env["OMNIRUN_CONCURRENT_LIMIT"].flatMap({ Int($0) }) { defaultConcurrentLimit = limit }
        if let limit = env["OMNIRUN_MAX_SANDBOXES"].flatMap({ Int($0) }) { maxSandboxes = limit }
        if let node = arguments.nodeID ?? env["OMNIRUN_NODE_ID"], !node.isEmpty { nodeID = try Self.clusterName(node, what: "node id") }
        if let region = arguments.region ?? env["OMNIRUN_REGION"], !region.isEmpty { self.region = try Self.clusterName(region, what: "region") }
        if let url = arguments.advertiseURL ?? env["OMNIRUN_ADVERTISE_URL"], !url.isEmpty {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                throw OmniRunError(.invalidArgument, "the advertise URL must be http(s)://host[:port], not '\(url)'")
            }
            advertiseURL = url
        }
        if advertiseURL == nil, !["0.0.0.0", "::", ""].contains(host) {
            // Listening on one address: that address is how other nodes reach this one.
            advertiseURL = host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
        }
        if let seconds = env["OMNIRUN_NODE_LEASE"].flatMap({ Int64($0) }) { nodeLease = .seconds(min(max(seconds, 2), 3600)) }
        if let seconds = env["OMNIRUN_NODE_LOST_GRACE"].flatMap({ Int64($0) }) { nodeLostGrace = .seconds(min(max(seconds, 0), 86_400)) }
        webhookAllowLoopback = env["OMNIRUN_WEBHOOK_ALLOW_LOOPBACK"] == "1"
        webhookAllowPrivate = env["OMNIRUN_WEBHOOK_ALLOW_PRIVATE"] ?? ""
        if let millis = env["OMNIRUN_WEBHOOK_RETRY_BASE_MS"].flatMap({ Int64($0) }), millis > 0 {
            webhookRetryBase = .milliseconds(millis)
        }
        if let seconds = env["OMNIRUN_METRICS_INTERVAL"].flatMap({ Double($0) }), seconds >= 0 {
            // At least 0.2 s, at most a day (so no value, `inf` included, can trap the conversion).
            metricsInterval = seconds > 0 ? .milliseconds(Int64(min(max(seconds, 0.2), 86_400) * 1000)) : nil
        }
        if let bytes = env["OMNIRUN_CONTEXT_OUTPUT_LIMIT"].flatMap({ Int($0) }), bytes > 0 {
            maxContextOutput = bytes
        }
        if let egress = env["OMNIRUN_BUILD_EGRESS"] { buildEgress = try BuildEgress.parse(egress) }
        if let file = env["OMNIRUN_BUILD_CA_FILE"] { buildCertificates = ["", "none"].contains(file) ? nil : file }
        // Sign-in mail, the vault's master key and the LLM proxy (OMNIRUN_SMTP_*, OMNIRUN_LLM_*, ...).
        try applyAccountEnvironment(env)
        builtInTemplates = BuiltInTemplates.locate(environment: env)
    }
}

extension ServerConfiguration {
    /// A node id or region: what preview host names and `omnirun node` show, so 1–40 of
    /// a–z, 0–9 and `-`, starting with a letter or digit.
    static func clusterName(_ name: String, what: String) throws -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-")
        guard (1...40).contains(name.count), name.allSatisfy(allowed.contains), name.first != "-" else {
            throw OmniRunError(.invalidArgument, "a \(what) is 1–40 of a–z, 0–9 and '-' (not starting with '-'), not '\(name)'")
        }
        return name
    }
}
