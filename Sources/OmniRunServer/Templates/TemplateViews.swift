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
    /// `ready` (image built: sandboxes can be created), `not_built`, `building` or `failed`.
    var status: String
    /// `ready` (creates are restores), `missing` (the first create takes it) or `building`.
    var snapshot: String
    /// Other names that create this template.
    var aliases: [String]
    /// The template it starts from.
    var parent: String?
    /// How to build it, while it is not built.
    var buildHint: String?
}
