import TemplateBuilder

/// An item of `GET /templates` and the answer of `GET /templates/{name}`.
struct TemplateView: Encodable, Sendable {
    /// The name `POST /sandboxes {"template": …}` takes.
    var templateID: String
    var name: String
    var description: String?
    /// Shipped with OmniRun (usable by every account) rather than built by a user.
    var builtIn: Bool
    var `public`: Bool
    var cpuCount: Int
    var memoryMB: Int
    var diskMB: Int
    /// Built-in: `ready` (image built: sandboxes can be created) or `not_built`.
    /// Custom: the latest build's `building`, `ready` or `failed`.
    var status: String
    /// `ready` (creates are restores), `missing` (the first create takes it) or `building`.
    var snapshot: String
    /// Other names that create this template.
    var aliases: [String]
    /// The template it starts from.
    var parent: String?
    /// How to build it, while it is not built.
    var buildHint: String?
    /// Custom templates: the latest build (`GET /templates/{name}/builds/{buildID}`).
    var buildID: String? = nil
    /// Custom templates: whether some build succeeded (a failed rebuild keeps the last good version).
    var usable: Bool? = nil
    var createdAt: String? = nil
    var updatedAt: String? = nil
    /// The ports its service listens on (a Dockerfile's `EXPOSE`).
    var ports: [Int]? = nil
    /// What runs before its snapshot: the start command and the ready check (`startCmd`
    /// and `readyCmd`, else the Dockerfile's `CMD`/`ENTRYPOINT` and `HEALTHCHECK`).
    var startCmd: String? = nil
    var readyCmd: String? = nil
}

/// The answer of `POST /templates` (202) and, as JSON, of `GET /templates/{name}/builds/{build}`.
struct TemplateBuildView: Encodable, Sendable {
    var templateID: String
    var buildID: String
    /// `building`, `ready` or `failed`.
    var status: String
    var error: String?
    var createdAt: String
    var finishedAt: String?
    /// The log so far (`GET …/builds/{build}` only).
    var logs: [String]?
    /// Each step's latest progress (`GET …/builds/{build}` only).
    var steps: [StepProgress]?
}
