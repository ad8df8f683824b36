import Crypto
import Foundation
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Seals vault values with AES-256-GCM under a data key of their account; each data key
/// is itself sealed ("wrapped") under a key derived from the server's master key. The
/// additional data binds every ciphertext to its account (and credential name), so a
/// row copied to another account or name does not open. The database alone reveals nothing.
package struct VaultCipher: Sendable {
    /// The key that wraps data keys, derived from the master key (kept as bytes: `SymmetricKey` is not `Sendable`).
    private let wrappingKeyBytes: [UInt8]
    package static let format = "v1"

    package init(masterKey: SymmetricKey) {
        let derived = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: masterKey, info: Data("omnirun-vault-key-wrapping-v1".utf8), outputByteCount: 32)
        wrappingKeyBytes = derived.withUnsafeBytes { Array($0) }
    }

    private var keyEncryptionKey: SymmetricKey { SymmetricKey(data: wrappingKeyBytes) }

    /// A new random data key for an account, wrapped for storage.
    package func newWrappedDataKey(accountID: String) throws -> String {
        let dataKey = SymmetricKey(size: .bits256)
        let raw = dataKey.withUnsafeBytes { Data($0) }
        return try seal(raw, key: keyEncryptionKey, context: "data-key\n\(accountID)")
    }

    package func unwrap(_ wrapped: String, accountID: String) throws -> SymmetricKey {
        SymmetricKey(data: try open(wrapped, key: keyEncryptionKey, context: "data-key\n\(accountID)"))
    }

    package func seal(value: String, name: String, accountID: String, dataKey: SymmetricKey) throws -> String {
        try seal(Data(value.utf8), key: dataKey, context: "credential\n\(accountID)\n\(name)")
    }

    package func open(sealed: String, name: String, accountID: String, dataKey: SymmetricKey) throws -> String {
        String(decoding: try open(sealed, key: dataKey, context: "credential\n\(accountID)\n\(name)"), as: UTF8.self)
    }

    private func seal(_ plaintext: Data, key: SymmetricKey, context: String) throws -> String {
        do {
            let box = try AES.GCM.seal(plaintext, using: key, authenticating: Data(context.utf8))
            guard let combined = box.combined else { throw OmniRunError(.internalError, "AES-GCM produced no output") }
            return Self.format + ":" + combined.base64EncodedString()
        } catch let error as OmniRunError {
            throw error
        } catch {
            throw OmniRunError(.internalError, "sealing a vault value failed")
        }
    }

    private func open(_ text: String, key: SymmetricKey, context: String) throws -> Data {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0] == Self.format, let combined = Data(base64Encoded: String(parts[1])) else {
            throw OmniRunError(.internalError, "a vault entry has an unknown format")
        }
        do {
            return try AES.GCM.open(try AES.GCM.SealedBox(combined: combined), using: key, authenticating: Data(context.utf8))
        } catch {
            throw OmniRunError(.internalError, "a vault entry does not open with this server's master key")
        }
    }
}

/// The server's master key: 32 random bytes (base64) in a file made on first start with
/// mode 0600. Losing it makes every vault unreadable; keep it with the database backups,
/// but not in them.
package enum MasterKeyFile {
    /// Reads the key, creating the file when it does not exist. Returns a warning to log
    /// when the file is readable by others.
    package static func loadOrCreate(path: String) throws -> (key: SymmetricKey, warning: String?) {
        if !FileManager.default.fileExists(atPath: path) {
            try create(path: path)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw OmniRunError(.invalidArgument, "cannot read the master key file \(path)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let raw = Data(base64Encoded: text), raw.count == 32 else {
            throw OmniRunError(.invalidArgument, "the master key file \(path) must hold 32 bytes in base64")
        }
        var warning: String? = nil
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o077 != 0 {
            warning = "the master key file \(path) is readable by other users (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it"
        }
        return (SymmetricKey(data: raw), warning)
    }

    private static func create(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
        let text = Data(bytes).base64EncodedString() + "\n"
        // O_EXCL: two servers starting at once never overwrite each other's key.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 {
            if errno == EEXIST { return }
            throw OmniRunError(.invalidArgument, "cannot create the master key file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let written = text.withCString { write(fd, $0, strlen($0)) }
        guard written == text.utf8.count, fsync(fd) == 0 else {
            unlink(path)
            throw OmniRunError(.internalError, "cannot write the master key file \(path)")
        }
    }
}
