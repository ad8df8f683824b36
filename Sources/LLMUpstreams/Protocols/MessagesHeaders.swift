import Foundation
import OmniRunError

/// The Anthropic headers a client's request brings that the upstream must get too: the API
/// version (`anthropic-version`, default 2023-06-01) and opt-in betas (`anthropic-beta`).
/// Checked (short, printable) before they are passed on; nothing else the client sent is.
public enum MessagesHeaders {
    public static let defaultVersion = "2023-06-01"
    static let maxLength = 1024

    /// The headers to send upstream, from the client's values (nil when absent).
    public static func forward(version: String?, beta: String?) throws -> [(String, String)] {
        var headers = [("anthropic-version", try checked("anthropic-version", version) ?? defaultVersion)]
        if let beta = try checked("anthropic-beta", beta) { headers.append(("anthropic-beta", beta)) }
        return headers
    }

    static func checked(_ name: String, _ value: String?) throws -> String? {
        guard let value else { return nil }
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        guard trimmed.utf8.count <= maxLength, trimmed.unicodeScalars.allSatisfy({ (0x20...0x7E).contains($0.value) }) else {
            throw OmniRunError(.invalidArgument, "the \(name) header must be printable ASCII of at most \(maxLength) characters")
        }
        return trimmed
    }
}
