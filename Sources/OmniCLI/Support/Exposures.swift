import Foundation

/// Exposures (preview URLs) as `sandbox open`, `expose`, `exposures` and
/// `refresh-exposure` show them.
enum Exposures {
    /// Polls the exposure until it is `ready`; fails after `seconds` or when it can no longer become ready.
    static func waitReady(_ client: APIClient, sandbox: String, _ exposure: [String: Any], seconds: Int) async throws -> [String: Any] {
        var exposure = exposure
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        while string(exposure["status"]) != "ready" {
            let status = string(exposure["status"])
            if ["revoked", "expired", "sandbox_stopped", "error"].contains(status) {
                throw CLIError("the exposure of port \(string(exposure["port"])) cannot become ready: it is \(status)")
            }
            guard Date() < deadline else {
                throw CLIError("the exposure of port \(string(exposure["port"])) is not ready after \(seconds) s (\(status))")
            }
            try await Task.sleep(for: .milliseconds(500))
            exposure = try await client.call(.GET, "/sandboxes/\(sandbox)/exposures/\(string(exposure["id"]))").object
        }
        return exposure
    }

    /// The URL to open: the one with the access token for a private exposure, else its URL.
    static func url(_ exposure: [String: Any]) -> String {
        string(exposure["accessUrl"]).isEmpty ? string(exposure["url"]) : string(exposure["accessUrl"])
    }

    static func table(_ exposures: [[String: Any]]) -> String {
        exposures.isEmpty ? "No exposures."
            : OmniCLI.table(["ID", "PORT", "STATUS", "VISIBILITY", "EXPIRES", "URL"], exposures.map {
                [string($0["id"]), string($0["port"]), string($0["status"]), string($0["visibility"]), string($0["expiresAt"]), url($0)]
            })
    }

    static func describe(_ exposure: [String: Any]) -> String {
        "\(string(exposure["id"])) port \(string(exposure["port"])) \(string(exposure["status"])) \(string(exposure["visibility"])), expires \(string(exposure["expiresAt"]))\n\(url(exposure))"
    }
}
