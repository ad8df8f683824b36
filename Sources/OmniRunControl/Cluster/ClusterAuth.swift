import Crypto
import Foundation
import OmniRunStore

/// Node-to-node authentication. Every call one node makes to another (a relayed request, a
/// template fetch, a preview connection handed on) carries
/// `x-omnirun-node-auth: t=<unix ms>,n=<node id>,s=<hex HMAC-SHA256>` over the method, the
/// request target, the sending node and the time, keyed with the cluster's secret (made by
/// the first node and kept in the shared store, so only a holder of the database has it).
/// A signature is good for a minute either side of the receiver's clock.
package struct ClusterAuth: Sendable {
    package static let header = "x-omnirun-node-auth"
    /// How far a signature's time may be from the receiver's clock.
    package static let skewMillis: Int64 = 60_000
    package let node: String
    private let secret: Data

    package init(node: String, secret: Data) {
        self.node = node
        self.secret = secret
    }

    /// The header value for a call of `method` on `target` (path and query) made now.
    package func sign(method: String, target: String, at millis: Int64 = nowMillis()) -> String {
        "t=\(millis),n=\(node),s=\(mac(method: method, target: target, node: node, millis: millis))"
    }

    /// The sending node's id if `value` is a good signature of this call, else nil.
    package func verify(_ value: String?, method: String, target: String, now: Int64 = nowMillis()) -> String? {
        guard let value, value.utf8.count <= 256 else { return nil }
        var fields: [String: String] = [:]
        for part in value.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, fields[String(pair[0])] == nil else { return nil }
            fields[String(pair[0])] = String(pair[1])
        }
        guard fields.count == 3, let time = fields["t"].flatMap({ Int64($0) }), let sender = fields["n"], let signature = fields["s"],
            !sender.isEmpty, sender.count <= 40
        else { return nil }
        let (difference, overflow) = now.subtractingReportingOverflow(time)
        guard !overflow, difference.magnitude <= UInt64(clamping: Self.skewMillis) else { return nil }
        let expected = mac(method: method, target: target, node: sender, millis: time)
        return Secrets.equal(signature, expected) ? sender : nil
    }

    private func mac(method: String, target: String, node: String, millis: Int64) -> String {
        let message = "omnirun-node-call\n\(method)\n\(target)\n\(node)\n\(millis)"
        return HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: SymmetricKey(data: secret)).map { String(format: "%02x", $0) }.joined()
    }

    /// A value that tells whether two nodes hold the same master key, without showing it.
    package static func masterKeyCheck(_ key: SymmetricKey) -> String {
        HMAC<SHA256>.authenticationCode(for: Data("omnirun-master-key-check".utf8), using: key)
            .map { String(format: "%02x", $0) }.joined()
    }
}
