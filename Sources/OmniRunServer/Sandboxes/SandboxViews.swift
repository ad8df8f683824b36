import OmniRunControl
import OmniRunStore

/// `GET /sandboxes/{id}` and the items of `GET /sandboxes` (wire protocol §4.2).
struct SandboxInfo: Encodable {
    var sandboxID: String
    var templateID: String
    var state: String
    var startedAt: String
    var endAt: String?
    var metadata: [String: String]
    var cpuCount: Int
    var memoryMB: Int
    var name: String?
    /// Only in the answer to an e2ee create (§12): the server's P-256 key, base64 DER SPKI.
    var serverPublicKey: String?
    var autoPause: Bool
    /// While paused: since when, the disk its saved state and its disk use, and when it is
    /// deleted if it is not resumed (`OMNIRUN_PAUSED_RETENTION`).
    var pausedAt: String?
    var pausedDiskBytes: Int64?
    var retainedUntil: String?
    /// The node that runs it and that node's region (docs/multi-node.md).
    var node: String?
    var region: String?

    /// The state clients see: `running`, `paused`, or `killed` for any sandbox that ended.
    static func wireState(_ state: SandboxState) -> String {
        state.isLive ? state.rawValue : "killed"
    }

    init(_ record: SandboxRecord, retentionSeconds: Int64? = nil) {
        sandboxID = record.id
        if record.state == .paused, let pausedAt = record.pausedAt, let retentionSeconds {
            retainedUntil = isoDate(pausedAt + retentionSeconds * 1000)
        }
        templateID = record.template
        state = Self.wireState(record.state)
        autoPause = record.autoPause
        pausedAt = record.state == .paused ? record.pausedAt.map(isoDate) : nil
        pausedDiskBytes = record.state == .paused ? record.pausedBytes : nil
        startedAt = isoDate(record.createdAt)
        endAt = record.endedAt.map(isoDate) ?? record.expiresAt.map(isoDate)
        metadata = record.metadata
        cpuCount = record.cpuCount
        memoryMB = record.memoryMB
        name = record.metadata["name"]
        node = record.nodeID
        region = record.region
    }
}

/// The answer of `POST /sandboxes`: the sandbox, and secure mode's traffic token (shown once).
struct CreatedSandbox: Encodable {
    var info: SandboxInfo
    var trafficToken: String?

    func encode(to encoder: any Encoder) throws {
        try info.encode(to: encoder)
        enum Keys: String, CodingKey { case trafficToken }
        var container = encoder.container(keyedBy: Keys.self)
        try container.encodeIfPresent(trafficToken, forKey: .trafficToken)
    }
}

/// `GET /sandboxes/history` items: how each past sandbox lived and ended. The fields of
/// `SandboxInfo`'s spelling, and beside them those the public CLI's `sandbox history` and
/// `sandbox info` read (`sandboxId`, `templateId`, `status`, `createdAt`, `stoppedAt`, …).
struct HistoryItem: Encodable {
    var sandboxID: String
    var templateID: String
    var startedAt: String
    var endedAt: String?
    var endReason: String?
    var durationSeconds: Double?
    var metadata: [String: String]
    var sandboxId: String
    var templateId: String
    var status: String
    var createdAt: String
    var stoppedAt: String?
    var cpuCount: Int
    var memoryMB: Int
    var timeoutSeconds: Int64

    init(_ record: SandboxRecord) {
        sandboxID = record.id
        templateID = record.template
        startedAt = isoDate(record.createdAt)
        endedAt = record.endedAt.map(isoDate)
        endReason = record.endReason?.rawValue
        durationSeconds = record.endedAt.map { Double($0 - record.createdAt) / 1000 }
        metadata = record.metadata
        sandboxId = record.id
        templateId = record.template
        status = SandboxInfo.wireState(record.state)
        createdAt = isoDate(record.createdAt)
        stoppedAt = record.endedAt.map(isoDate)
        cpuCount = record.cpuCount
        memoryMB = record.memoryMB
        timeoutSeconds = record.timeoutSeconds
    }
}

/// Accepts any JSON value (for fields whose presence is all that matters here).
struct AnyJSON: Decodable {
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { return }
        if (try? container.decode(Bool.self)) != nil { return }
        if (try? container.decode(Double.self)) != nil { return }
        if (try? container.decode(String.self)) != nil { return }
        if (try? container.decode([AnyJSON].self)) != nil { return }
        if (try? container.decode([String: AnyJSON].self)) != nil { return }
        throw DecodingError.dataCorruptedError(in: container, debugDescription: "unreadable JSON value")
    }
}
