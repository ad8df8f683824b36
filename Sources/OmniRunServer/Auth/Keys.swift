import Crypto
import Foundation

/// API keys: `omr_` and 43 random characters, shown once, stored as SHA-256 hashes.
enum APIKeys {
    static func generate() -> String {
        "omr_" + base64URL(randomBytes(32))
    }

    static func hash(_ key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func prefix(_ key: String) -> String {
        String(key.prefix(12))
    }
}

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

func base64URL(_ bytes: some Sequence<UInt8>) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

func randomID(_ prefix: String, bytes: Int = 8) -> String {
    prefix + randomBytes(bytes).map { String(format: "%02x", $0) }.joined()
}

/// Time-bound URLs for one sandbox, one path and one operation, usable without a key.
struct URLSigner: @unchecked Sendable {
    let key: SymmetricKey

    enum Operation: String {
        case download, upload
    }

    func signature(sandbox: String, operation: Operation, path: String, expires: Int64) -> String {
        let message = "\(operation.rawValue)\n\(sandbox)\n\(path)\n\(expires)"
        let mac = HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: key)
        return base64URL(Data(mac))
    }

    func verify(sandbox: String, operation: Operation, path: String, expires: Int64, signature: String, now: Int64) -> Bool {
        guard expires > now / 1000 else { return false }
        let expected = self.signature(sandbox: sandbox, operation: operation, path: path, expires: expires)
        // Constant-time comparison.
        let a = Array(expected.utf8)
        let b = Array(signature.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
