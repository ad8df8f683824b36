import Crypto
import Foundation
import OmniRunError

/// The encrypted transport of wire protocol §12 (the server's and `omni`'s side): an ECDH P-256 agreement at create, then
/// AES-256-GCM envelopes `{alg, nonce, ciphertext, aad?}` under a key from HKDF-SHA-256
/// (empty salt, info `omnirun-e2ee-v1`) over the shared secret's X coordinate.
public struct E2EEChannel: Sendable {
    public static let info = "omnirun-e2ee-v1"
    public static let algorithm = "AES-256-GCM"
    public static let nonceBytes = 12
    public static let tagBytes = 16

    /// The 32-byte AES key (kept as bytes: `SymmetricKey` is not `Sendable`). Never logged.
    public let keyBytes: [UInt8]

    public init(keyBytes: [UInt8]) {
        precondition(keyBytes.count == 32, "an e2ee key has 32 bytes")
        self.keyBytes = keyBytes
    }

    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// The server's side of the handshake: a fresh key pair for this sandbox, the channel
    /// key, and the server's public key in the wire encoding (base64 DER SPKI).
    public static func accept(clientPublicKey: String) throws -> (channel: E2EEChannel, serverPublicKey: String) {
        let peer = try publicKey(clientPublicKey)
        let serverKey = P256.KeyAgreement.PrivateKey()
        let channel = try derive(privateKey: serverKey, peer: peer)
        return (channel, serverKey.publicKey.derRepresentation.base64EncodedString())
    }

    /// Parses a base64 (standard alphabet, padded) DER SubjectPublicKeyInfo of a P-256 key.
    public static func publicKey(_ text: String) throws -> P256.KeyAgreement.PublicKey {
        guard text.utf8.count <= 512, let der = Data(base64Encoded: text) else {
            throw OmniRunError(.invalidArgument, "clientPublicKey must be base64 (standard alphabet, padded) of a DER SPKI")
        }
        do {
            return try P256.KeyAgreement.PublicKey(derRepresentation: der)
        } catch {
            throw OmniRunError(.invalidArgument, "clientPublicKey is not a DER SPKI of an ECDH P-256 public key")
        }
    }

    public static func derive(privateKey: P256.KeyAgreement.PrivateKey, peer: P256.KeyAgreement.PublicKey) throws -> E2EEChannel {
        let secret: SharedSecret
        do {
            secret = try privateKey.sharedSecretFromKeyAgreement(with: peer)
        } catch {
            throw OmniRunError(.invalidArgument, "the key agreement with clientPublicKey failed")
        }
        let key = secret.hkdfDerivedSymmetricKey(
            using: SHA256.self, salt: Data(), sharedInfo: Data(info.utf8), outputByteCount: 32)
        return E2EEChannel(keyBytes: key.withUnsafeBytes { Array($0) })
    }

    /// The envelope as it travels (all fields strings; `aad` optional).
    public struct Envelope: Codable, Sendable, Equatable {
        public var alg: String
        public var nonce: String
        public var ciphertext: String
        public var aad: String?

        public init(alg: String, nonce: String, ciphertext: String, aad: String? = nil) {
            self.alg = alg
            self.nonce = nonce
            self.ciphertext = ciphertext
            self.aad = aad
        }
    }

    /// A checked envelope: the 12-byte nonce, and the plaintext it carries.
    public struct Opened: Sendable {
        public var nonce: [UInt8]
        public var plaintext: Data
    }

    /// Opens an envelope. Every fault is a 400 with a message that says which check failed
    /// (and nothing about the key or the plaintext).
    public func open(_ envelope: Envelope) throws -> Opened {
        guard envelope.alg == Self.algorithm else {
            throw OmniRunError(
                .invalidArgument, "unsupported e2ee algorithm '\(envelope.alg.prefix(40))' (only \(Self.algorithm))")
        }
        guard let nonce = Data(base64Encoded: envelope.nonce) else {
            throw OmniRunError(.invalidArgument, "e2ee nonce is not base64")
        }
        guard nonce.count == Self.nonceBytes else {
            throw OmniRunError(.invalidArgument, "e2ee nonce must be \(Self.nonceBytes) bytes, got \(nonce.count)")
        }
        guard let combined = Data(base64Encoded: envelope.ciphertext) else {
            throw OmniRunError(.invalidArgument, "e2ee ciphertext is not base64")
        }
        guard combined.count >= Self.tagBytes else {
            throw OmniRunError(.invalidArgument, "e2ee ciphertext is shorter than its \(Self.tagBytes)-byte tag")
        }
        do {
            let box = try AES.GCM.SealedBox(
                nonce: try AES.GCM.Nonce(data: nonce), ciphertext: combined.prefix(combined.count - Self.tagBytes),
                tag: combined.suffix(Self.tagBytes))
            let plaintext: Data
            if let aad = envelope.aad, !aad.isEmpty {
                plaintext = try AES.GCM.open(box, using: key, authenticating: Data(aad.utf8))
            } else {
                plaintext = try AES.GCM.open(box, using: key)
            }
            return Opened(nonce: Array(nonce), plaintext: plaintext)
        } catch {
            throw OmniRunError(
                .invalidArgument, "e2ee envelope does not authenticate (tampered, or sealed under another key)")
        }
    }

    /// Seals a plaintext; a random nonce unless one is given (the known-answer tests give one).
    public func seal(_ plaintext: Data, nonce: [UInt8]? = nil, aad: String? = nil) throws -> Envelope {
        let gcmNonce = try nonce.map { try AES.GCM.Nonce(data: $0) } ?? AES.GCM.Nonce()
        let box: AES.GCM.SealedBox
        if let aad, !aad.isEmpty {
            box = try AES.GCM.seal(plaintext, using: key, nonce: gcmNonce, authenticating: Data(aad.utf8))
        } else {
            box = try AES.GCM.seal(plaintext, using: key, nonce: gcmNonce)
        }
        return Envelope(
            alg: Self.algorithm, nonce: gcmNonce.withUnsafeBytes { Data($0) }.base64EncodedString(),
            ciphertext: (box.ciphertext + box.tag).base64EncodedString(), aad: aad)
    }
}
