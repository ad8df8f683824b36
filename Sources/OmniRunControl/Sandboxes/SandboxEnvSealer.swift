import Crypto
import Foundation
import OmniRunError
import OmniRunStore

/// A sandbox's `envVars` at rest: AES-256-GCM under a key derived from the server's master
/// key (its own HKDF info, apart from the vault's, e2ee's and webhooks'), bound to the
/// sandbox id, so neither the database nor its WAL holds the values and a row copied to
/// another sandbox does not open.
package struct SandboxEnvSealer: SandboxEnvSealing {
    private let keyBytes: [UInt8]
    package static let format = "v1"

    package init(masterKey: SymmetricKey) {
        let derived = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: masterKey, info: Data("omnirun-sandbox-env-v1".utf8), outputByteCount: 32)
        keyBytes = derived.withUnsafeBytes { Array($0) }
    }

    package func seal(_ plaintext: String, sandboxID: String) throws -> String {
        do {
            let box = try AES.GCM.seal(Data(plaintext.utf8), using: SymmetricKey(data: keyBytes), authenticating: context(sandboxID))
            guard let combined = box.combined else { throw OmniRunError(.internalError, "AES-GCM produced no output") }
            return Self.format + ":" + combined.base64EncodedString()
        } catch let error as OmniRunError {
            throw error
        } catch {
            throw OmniRunError(.internalError, "sealing a sandbox's environment failed")
        }
    }

    package func open(_ sealed: String, sandboxID: String) throws -> String {
        let parts = sealed.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0] == Self.format, let combined = Data(base64Encoded: String(parts[1])) else {
            throw OmniRunError(.internalError, "a sandbox's stored environment has an unknown format")
        }
        do {
            let plaintext = try AES.GCM.open(
                try AES.GCM.SealedBox(combined: combined), using: SymmetricKey(data: keyBytes), authenticating: context(sandboxID))
            return String(decoding: plaintext, as: UTF8.self)
        } catch {
            throw OmniRunError(.internalError, "a sandbox's stored environment does not open with this server's master key")
        }
    }

    private func context(_ sandboxID: String) -> Data { Data("sandbox-env\n\(sandboxID)".utf8) }
}
