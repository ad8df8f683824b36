import Crypto
import Foundation

/// Time-bound URLs usable without a key: each grants one method on one route (download or
/// upload) of one sandbox, for one path as one guest user, until its expiry. The HMAC covers
/// all six, each field length-prefixed so that no value can run into the next.
package struct URLSigner: @unchecked Sendable {
    package let key: SymmetricKey

    package enum Operation: String, Sendable {
        case download, upload
    }

    /// What a verified signed URL allows: the handler uses these values, never the
    /// request's own query or form fields.
    package struct Grant: Sendable, Equatable {
        package var sandbox: String
        package var operation: Operation
        /// `GET` for downloads; `PUT` or `POST` for uploads, as chosen when signing.
        package var method: String
        package var path: String
        /// The guest user; empty means the sandbox's default user.
        package var user: String
        /// Unix seconds.
        package var expires: Int64

        package init(sandbox: String, operation: Operation, method: String, path: String, user: String, expires: Int64) {
            self.sandbox = sandbox
            self.operation = operation
            self.method = method
            self.path = path
            self.user = user
            self.expires = expires
        }
    }

    /// The query names a signed URL carries; any other name, or one given twice, is refused.
    package static let queryNames: Set<String> = ["path", "user", "expires", "signature"]

    package func signature(_ grant: Grant) -> String {
        let fields = [
            "omnirun-signed-url-v2", grant.method, grant.operation.rawValue, grant.sandbox, grant.path, grant.user,
            "\(grant.expires)",
        ]
        let message = fields.map { "\($0.utf8.count):\($0)" }.joined(separator: "\n")
        let mac = HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: key)
        return base64URL(Data(mac))
    }

    /// The query of a signed URL: `path`, `user` (only when one was chosen), `expires`, `signature`.
    package func query(_ grant: Grant) -> [(String, String)] {
        var items = [("path", grant.path)]
        if !grant.user.isEmpty { items.append(("user", grant.user)) }
        items += [("expires", "\(grant.expires)"), ("signature", signature(grant))]
        return items
    }

    package func verify(_ grant: Grant, signature: String, now: Int64) -> Bool {
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
