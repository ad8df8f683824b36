import Crypto
import Foundation

/// Time-bound URLs usable without a key: each grants one method on one route (download or
/// upload) of one sandbox, for one path as one guest user, until its expiry. The HMAC covers
/// all six, each field length-prefixed so that no value can run into the next.
struct URLSigner: @unchecked Sendable {
    let key: SymmetricKey

    enum Operation: String, Sendable {
        case download, upload
    }

    /// What a verified signed URL allows: the handler uses these values, never the
    /// request's own query or form fields.
    struct Grant: Sendable, Equatable {
        var sandbox: String
        var operation: Operation
        /// `GET` for downloads; `PUT` or `POST` for uploads, as chosen when signing.
        var method: String
        var path: String
        /// The guest user; empty means the sandbox's default user.
        var user: String
        /// Unix seconds.
        var expires: Int64
    }

    /// The query names a signed URL carries; any other name, or one given twice, is refused.
    static let queryNames: Set<String> = ["path", "user", "expires", "signature"]

    func signature(_ grant: Grant) -> String {
        let fields = [
            "omnirun-signed-url-v2", grant.method, grant.operation.rawValue, grant.sandbox, grant.path, grant.user,
            "\(grant.expires)",
        ]
        let message = fields.map { "\($0.utf8.count):\($0)" }.joined(separator: "\n")
        let mac = HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: key)
        return base64URL(Data(mac))
    }

    /// The query of a signed URL: `path`, `user` (only when one was chosen), `expires`, `signature`.
    func query(_ grant: Grant) -> [(String, String)] {
        var items = [("path", grant.path)]
        if !grant.user.isEmpty { items.append(("user", grant.user)) }
        items += [("expires", "\(grant.expires)"), ("signature", signature(grant))]
        return items
    }

    func verify(_ grant: Grant, signature: String, now: Int64) -> Bool {
        guard grant.expires > now / 1000 else { return false }
        let a = Array(self.signature(grant).utf8)
        let b = Array(signature.utf8)
        guard a.count == b.count else { return false }
        // Constant-time comparison.
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
