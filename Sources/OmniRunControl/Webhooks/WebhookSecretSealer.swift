import Crypto
import Foundation
import OmniRunError

/// Webhook signing secrets at rest: AES-256-GCM under a key derived from the server's
/// master key (its own HKDF info, apart from the vault's and e2ee's), bound to the webhook
/// id, so the database alone cannot forge signatures. The secret is shown once, when the
/// webhook is created. Rows written before secrets were sealed (`whsec_…` in clear) are
/// still read as they are.
package struct WebhookSecretSealer: Sendable {
    private let keyBytes: [UInt8]
    package static let format = "v1"
    package static let clearPrefix = "whsec_"

    package init(masterKey: SymmetricKey) {
        let derived = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: masterKey, info: Data("omnirun-webhook-secret-v1".utf8), outputByteCount: 32)
        keyBytes = derived.withUnsafeBytes { Array($0) }
    }

    package func seal(_ secret: String, webhookID: String) throws -> String {
        do {
            let box = try AES.GCM.seal(Data(secret.utf8), using: SymmetricKey(data: keyBytes), authenticating: context(webhookID))
            guard let combined = box.combined else { throw OmniRunError(.internalError, "AES-GCM produced no output") }
            return Self.format + ":" + combined.base64EncodedString()
        } catch let error as OmniRunError {
            throw error
        } catch {
            throw OmniRunError(.internalError, "sealing a webhook secret failed")
        }
    }

    package func open(_ stored: String, webhookID: String) throws -> String {
        if stored.hasPrefix(Self.clearPrefix) { return stored }
        let parts = stored.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0] == Self.format, let combined = Data(base64Encoded: String(parts[1])) else {
            throw OmniRunError(.internalError, "a stored webhook secret has an unknown format")
        }
        do {
            let secret = try AES.GCM.open(
                try AES.GCM.SealedBox(combined: combined), using: SymmetricKey(data: keyBytes), authenticating: context(webhookID))
            return String(decoding: secret, as: UTF8.self)
        } catch {
            throw OmniRunError(.internalError, "a stored webhook secret does not open with this server's master key")
        }
    }

    private func context(_ webhookID: String) -> Data { Data("webhook-secret\n\(webhookID)".utf8) }
}
