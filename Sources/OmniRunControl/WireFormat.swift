import Foundation

/// How the control plane writes what clients and webhooks read: JSON without escaped
/// slashes, times in ISO 8601 with milliseconds.
package enum WireFormat {
    package static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()
}

/// ISO 8601 with milliseconds, as the SDK's `new Date(...)` reads it.
package func isoDate(_ millis: Int64) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: Date(timeIntervalSince1970: Double(min(max(millis, isoDateRange.lowerBound), isoDateRange.upperBound)) / 1000))
}

/// Years 1 to 9999, in milliseconds since 1970: times a guest reports (a process's start,
/// a file's mtime) are shown within them, whatever it claims.
package let isoDateRange: ClosedRange<Int64> = -62_135_596_800_000...253_402_300_799_999

/// This server's version (`GET /status`, the webhooks' `User-Agent`).
public enum OmniRunVersion {
    public static let current = "0.1.0"
}
