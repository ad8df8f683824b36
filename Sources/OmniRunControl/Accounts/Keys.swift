import Crypto
import Foundation

/// API keys: `omr_` and 43 random characters, shown once, stored as SHA-256 hashes.
package enum APIKeys {
    package static func generate() -> String {
        "omr_" + base64URL(randomBytes(32))
    }

    package static func hash(_ key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    package static func prefix(_ key: String) -> String {
        String(key.prefix(12))
    }
}

package func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

package func base64URL(_ bytes: some Sequence<UInt8>) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

package func randomID(_ prefix: String, bytes: Int = 8) -> String {
    prefix + randomBytes(bytes).map { String(format: "%02x", $0) }.joined()
}
