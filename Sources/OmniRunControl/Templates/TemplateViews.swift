import TemplateBuilder

/// An item of `GET /templates` and the answer of `GET /templates/{name}`.
package struct TemplateView: Encodable, Sendable {
    /// The name `POST /sandboxes {"template": …}` takes.
    package var templateID: String
    package var name: String
    package var description: String?
    /// Shipped with OmniRun (usable by every account) rather than built by a user.
    package var builtIn: Bool
    package var `public`: Bool
    package var cpuCount: Int
    package var memoryMB: Int
    package var diskMB: Int
    /// Built-in: `ready` (image built: sandboxes can be created) or `not_built`.
    /// Custom: the latest build's `building`, `ready` or `failed`.
    package var status: String
    /// `ready` (creates are restores), `missing` (the first create takes it) or `building`.
    package var snapshot: String
    /// Other names that create this template.
    package var aliases: [String]
    /// The template it starts from.
    package var parent: String?
    /// How to build it, while it is not built.
    package var buildHint: String?
    /// Custom templates: the latest build (`GET /templates/{name}/builds/{buildID}`).
    package var buildID: String? = nil
    /// Custom templates: whether some build succeeded (a failed rebuild keeps the last good version).
    package var usable: Bool? = nil
    package var createdAt: String? = nil
    package var updatedAt: String? = nil
    /// The ports its service listens on (a Dockerfile's `EXPOSE`).
    package var ports: [Int]? = nil
    /// What runs before its snapshot: the start command and the ready check (`startCmd`
    /// and `readyCmd`, else the Dockerfile's `CMD`/`ENTRYPOINT` and `HEALTHCHECK`).
    package var startCmd: String? = nil
    package var readyCmd: String? = nil
}

/// The answer of `POST /templates` (202) and, as JSON, of `GET /templates/{name}/builds/{build}`.
package struct TemplateBuildView: Encodable, Sendable {
    package var templateID: String
    package var buildID: String
    /// `building`, `ready` or `failed`.
    package var status: String
    package var error: String?
    package var createdAt: String
    package var finishedAt: String?
    /// The log so far (`GET …/builds/{build}` only).
    package var logs: [String]?
    /// Each step's latest progress (`GET …/builds/{build}` only).
    package var steps: [StepProgress]?

    package init(
        templateID: String, buildID: String, status: String, error: String? = nil, createdAt: String, finishedAt: String? = nil, logs: [String]? = nil, steps: [StepProgress]? = nil
    ) {
        self.templateID = templateID
        self.buildID = buildID
        self.status = status
        self.error = error
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.logs = logs
        self.steps = steps
    }
}
