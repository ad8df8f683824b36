import Crypto
import Foundation
import OmniRunError
import OmniRunE2EE

/// The key pairs of the e2ee sandboxes `omni sandbox create --e2ee` made: one file per
/// sandbox, `$OMNI_CONFIG_DIR/e2ee/<sandbox>.json` (mode 0600 in a 0700 folder), holding the
/// client's P-256 private key and the server's public key from the create answer. Every
/// later command on that sandbox (exec, command, files, expose, desktop, shell) finds it
/// here, so the sandbox stays reachable from any later `omni` run; `omni sandbox kill`
/// removes it.
enum E2EEKeys {
    struct Stored: Codable {
        var sandboxID: String
        var apiUrl: String
        /// The client's private key, base64 of its raw 32-byte scalar.
        var privateKey: String
        /// The server's public key as it answered (base64 DER SPKI).
        var serverPublicKey: String
        var createdAt: String
    }

    static var directory: String { Credentials.directory + "/e2ee" }

    /// The key file of a sandbox; nil for an id that is not a plain sandbox id (it names a file).
    static func path(_ sandbox: String) -> String? {
        guard !sandbox.isEmpty, sandbox.count <= 128,
            sandbox.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "_" || $0 == "-" })
        else { return nil }
        return directory + "/\(sandbox).json"
    }

    /// A fresh key pair; its public key in the wire encoding (base64 DER SPKI).
    static func generate() -> (privateKey: P256.KeyAgreement.PrivateKey, publicKey: String) {
        let key = P256.KeyAgreement.PrivateKey()
        return (key, key.publicKey.derRepresentation.base64EncodedString())
    }

    /// Keeps the pair of a new sandbox and checks that the server's key agrees with it.
    static func save(sandbox: String, privateKey: P256.KeyAgreement.PrivateKey, serverPublicKey: String, apiUrl: String) throws {
        _ = try channel(privateKey: privateKey, serverPublicKey: serverPublicKey)
        guard let path = path(sandbox) else { throw CLIError("the server answered an unusable sandbox id '\(sandbox.prefix(80))'") }
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let stored = Stored(
            sandboxID: sandbox, apiUrl: apiUrl, privateKey: privateKey.rawRepresentation.base64EncodedString(),
            serverPublicKey: serverPublicKey, createdAt: ISO8601DateFormatter().string(from: Date()))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writePrivateFile(path, try encoder.encode(stored))
    }

    /// The channel of a sandbox created here with --e2ee; nil for any other sandbox.
    static func channel(sandbox: String) throws -> E2EEChannel? {
        guard let path = path(sandbox), let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let stored = try? JSONDecoder().decode(Stored.self, from: data),
            let raw = Data(base64Encoded: stored.privateKey),
            let key = try? P256.KeyAgreement.PrivateKey(rawRepresentation: raw)
        else {
            throw CLIError("the e2ee key file \(path) is damaged; this sandbox cannot be reached without it")
        }
        return try channel(privateKey: key, serverPublicKey: stored.serverPublicKey)
    }

    static func remove(sandbox: String) {
        guard let path = path(sandbox) else { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    private static func channel(privateKey: P256.KeyAgreement.PrivateKey, serverPublicKey: String) throws -> E2EEChannel {
        do {
            return try E2EEChannel.derive(privateKey: privateKey, peer: try E2EEChannel.publicKey(serverPublicKey))
        } catch let error as OmniRunError {
            throw CLIError("the server's e2ee key is unusable: \(error.message)")
        }
    }
}

extension E2EEChannel {
    /// Seals a request body for `target` (`POST /sandboxes/{id}/...`, the query included):
    /// the envelope's `aad` binds it to that request, so it cannot be replayed on another route.
    func sealRequest(_ body: Data, target: String) throws -> Data {
        let envelope = try seal(body, aad: target)
        return try JSONEncoder().encode(["_encrypted": envelope])
    }

    /// Opens a sealed answer, which must be bound to this request (`response <METHOD> <target>`).
    func openResponse(_ data: Data, request target: String) throws -> Data {
        struct Wrapper: Decodable { var _encrypted: Envelope }
        guard let envelope = try? JSONDecoder().decode(Wrapper.self, from: data)._encrypted else {
            throw CLIError("the server answered an e2ee sandbox in plaintext (refused: it must be sealed)")
        }
        guard envelope.aad == "response " + target else {
            throw CLIError("the server's sealed answer is bound to another request ('\(String((envelope.aad ?? "").prefix(120)))')")
        }
        do {
            return try open(envelope).plaintext
        } catch let error as OmniRunError {
            throw CLIError("the server's sealed answer does not open: \(error.message)")
        }
    }
}
