import Crypto
import Foundation

/// The names of the credentials the preview gateway reads.
package enum PreviewAccess {
    /// Secure mode's header (the public SDK's name for it).
    package static let trafficTokenHeader = "e2b-traffic-access-token"
    /// A private exposure's token: in the query of `accessUrl` (once; it becomes a cookie),
    /// as a cookie, or as this header.
    package static let queryToken = "omnirun_token"
    package static let cookie = "omnirun_preview"
    package static let tokenHeader = "x-omnirun-exposure-token"

    package static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Compares two secrets in time independent of where they differ.
    package static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}
