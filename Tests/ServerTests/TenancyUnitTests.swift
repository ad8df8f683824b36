import Crypto
import Foundation
import Logging
import OmniRunError
import OmniRunStore
import Testing

@testable import OmniRunControl
@testable import OmniRunServer

/// The pieces that keep tenants apart, alone: signed URLs, the sign-up policy, trusted
/// proxies, the build quota and a sandbox's environment at rest.
@Suite("Tenant boundaries (units)")
struct TenancyUnitTests {
    static let grant = URLSigner.Grant(
        sandbox: "sb_12345678", operation: .upload, method: "POST", path: "/tmp/in.txt", user: "", expires: 4_000_000_000)

    @Test func aSignatureCoversMethodRouteSandboxPathUserAndExpiry() {
        let signer = URLSigner(key: SymmetricKey(size: .bits256))
        let signature = signer.signature(Self.grant)
        #expect(signer.verify(Self.grant, signature: signature, now: 0))
        var changes: [URLSigner.Grant] = []
        for change in 0..<6 {
            var other = Self.grant
            switch change {
            case 0: other.method = "PUT"
            case 1: other.operation = .download
            case 2: other.sandbox = "sb_87654321"
            case 3: other.path = "/etc/profile.d/zz-evil.sh"
            case 4: other.user = "root"
            default: other.expires += 1
            }
            changes.append(other)
        }
        for other in changes { #expect(!signer.verify(other, signature: signature, now: 0), "\(other)") }
        // Fields cannot run into each other: "a" + "\nb" is not "a\n" + "b".
        var left = Self.grant
        left.path = "/tmp/a"
        left.user = "\nroot"
        var right = Self.grant
        right.path = "/tmp/a\n"
        right.user = "root"
        #expect(signer.signature(left) != signer.signature(right))
        // Expired, and another key.
        #expect(!signer.verify(Self.grant, signature: signature, now: 4_000_000_000 * 1000))
        #expect(!URLSigner(key: SymmetricKey(size: .bits256)).verify(Self.grant, signature: signature, now: 0))
        // The URL's query: `user` only when one was signed.
        #expect(signer.query(Self.grant).map(\.0) == ["path", "expires", "signature"])
        var asRoot = Self.grant
        asRoot.user = "root"
        #expect(signer.query(asRoot).map(\.0) == ["path", "user", "expires", "signature"])
        #expect(AuthMiddleware.queryPairs("path=%2Ftmp%2Fa+b&path=x&user=").map { "\($0.0)=\($0.1)" } == ["path=/tmp/a b", "path=x", "user="])
        #expect(FileController.stagingPath(for: "/etc/x.sh").hasPrefix("/etc/.omnirun-upload-"))
        #expect(FileController.stagingPath(for: "in.txt").hasPrefix(".omnirun-upload-"))
    }

    @Test func signUpPolicies() throws {
        #expect(try SignUpPolicy.parse("open") == .open)
        #expect(try SignUpPolicy.parse("closed") == .closed)
        #expect(SignUpPolicy.closed.permits("a@b.co") == false)
        #expect(SignUpPolicy.open.permits("a@b.co"))
        let list = try SignUpPolicy.parse(" friends.test, @team.example.org ,Bob@Else.test ")
        #expect(list.permits("alice@friends.test"))
        #expect(list.permits("carol@team.example.org"))
        #expect(list.permits("bob@else.test"))
        #expect(!list.permits("eve@else.test"))
        #expect(!list.permits("mallory@sub.friends.test"), "a domain does not cover its subdomains")
        #expect(!list.permits("mallory@friends.test.evil.test"))
        for bad in ["not a domain", "x@", "@", "a@@b.co", ","] {
            #expect(throws: OmniRunError.self, "\(bad)") { try SignUpPolicy.parse(bad) }
        }
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedProxies() throws {
        let proxies = try TrustedProxies.parse("127.0.0.1, 10.0.0.0/8, fd00::/8")
        // Not from a trusted proxy: the header is ignored, whatever it says.
        #expect(proxies.clientAddress(peer: "203.0.113.9", forwardedFor: ["1.2.3.4"]) == "203.0.113.9")
        #expect(proxies.clientAddress(peer: "127.0.0.2", forwardedFor: ["1.2.3.4"]) == "127.0.0.2")
        // From a trusted proxy: the nearest hop that is not one; a forged left part changes nothing.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["198.51.100.7"]) == "198.51.100.7")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["6.6.6.6, 198.51.100.7"]) == "198.51.100.7")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["6.6.6.6", "198.51.100.7, 10.1.2.3"]) == "198.51.100.7")
        #expect(proxies.clientAddress(peer: "::ffff:127.0.0.1", forwardedFor: ["2001:db8::1"]) == "2001:db8::1")
        #expect(proxies.clientAddress(peer: "fd00::5", forwardedFor: ["2001:DB8:0::1"]) == "2001:db8::1")
        // Garbage stops the walk at the last proxy; no header: the proxy itself.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["not-an-ip"]) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["1.1.1.1, bogus, 10.0.0.1"]) == "10.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: []) == "127.0.0.1")
        // No proxies configured: always the peer.
        #expect(TrustedProxies().clientAddress(peer: "127.0.0.1", forwardedFor: ["1.2.3.4"]) == "127.0.0.1")
        for bad in ["10.0.0.0/33", "example.com", "::1/129", "1.2.3"] {
            #expect(throws: OmniRunError.self, "\(bad)") { try TrustedProxies.parse(bad) }
        }
    }

    @Test func tenancySettingsFromTheEnvironment() throws {
        var configuration = ServerConfiguration(dataDirectory: "/tmp/unused")
        #expect(configuration.signIn.signUp == .closed)
        #expect(configuration.quotas.pausedPerAccount == 10 && configuration.quotas.pausedRetentionSeconds == 30 * 86400)
        try configuration.applyTenancyEnvironment([
            "OMNIRUN_SIGNUP": "open", "OMNIRUN_TRUSTED_PROXIES": "127.0.0.1", "OMNIRUN_PAUSED_LIMIT": "2",
            "OMNIRUN_PAUSED_RETENTION": "60", "OMNIRUN_BUILD_QUEUE_LIMIT": "1", "OMNIRUN_BUILD_QUEUE_BYTES": "1048576",
        ])
        #expect(configuration.signIn.signUp == .open && !configuration.trustedProxies.isEmpty)
        #expect(configuration.quotas.pausedPerAccount == 2 && configuration.quotas.pausedRetentionSeconds == 60)
        #expect(configuration.quotas.buildsPerAccount == 1 && configuration.quotas.buildContextBytesPerAccount == 1 << 20)
        for (name, value) in [
            ("OMNIRUN_PAUSED_LIMIT", "-1"), ("OMNIRUN_PAUSED_RETENTION", "0"), ("OMNIRUN_PAUSED_RETENTION", "99999999999999999999"),
            ("OMNIRUN_BUILD_QUEUE_LIMIT", "many"), ("OMNIRUN_SIGNUP", "x@"), ("OMNIRUN_TRUSTED_PROXIES", "nope"),
        ] {
            #expect(throws: OmniRunError.self, "\(name)=\(value)") { try configuration.applyTenancyEnvironment([name: value]) }
        }
    }

    @Test func theBuildQuotaCountsUploadsAndBytes() async throws {
        let quota = BuildQuota(maxBuilds: 2, maxBytes: 100)
        let (first, allowance) = try await quota.reserve(accountID: "a", largest: 80)
        #expect(allowance == 80)
        // While the first upload runs it holds all it may use: 20 bytes are left.
        let (second, left) = try await quota.reserve(accountID: "a", largest: 80)
        #expect(left == 20)
        await #expect(throws: OmniRunError.self) { try await quota.reserve(accountID: "a", largest: 80) }
        // Another account is not affected.
        _ = try await quota.reserve(accountID: "b", largest: 80)
        await quota.settle(first, bytes: 10)
        await quota.release(second)
        let usage = await quota.usage(accountID: "a")
        #expect(usage.builds == 1 && usage.bytes == 10)
        let (_, after) = try await quota.reserve(accountID: "a", largest: 80)
        #expect(after == 80)
        await quota.release(first)
        // Bytes alone can fill it too.
        let tight = BuildQuota(maxBuilds: 5, maxBytes: 10)
        let (held, _) = try await tight.reserve(accountID: "a", largest: 10)
        await #expect(throws: OmniRunError.self) { try await tight.reserve(accountID: "a", largest: 10) }
        await tight.release(held)
        let empty = await tight.usage(accountID: "a")
        #expect(empty.builds == 0 && empty.bytes == 0)
    }

    /// `envVars` in the store: ciphertext bound to the sandbox, opened on the way out; rows
    /// stored in the clear before sealing are still read.
    @Test func sandboxEnvironmentIsSealedInTheStore() async throws {
        let path = FileManager.default.temporaryDirectory.path + "/omnirun-env-\(UUID().uuidString).db"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let database = try await Store.open(url: "sqlite://" + path, logger: Logger(label: "test"))
        let sealer = SandboxEnvSealer(masterKey: SymmetricKey(size: .bits256))
        let sandboxes = SandboxRepository(database: database, envSealer: sealer)
        let accounts = AccountRepository(database: database)
        try await accounts.create(AccountRecord(id: "acc_env", email: "env@x.io", role: .user, concurrentLimit: 3, createdAt: 1))
        let secret = "s3cr3t-\(UUID().uuidString)"
        var record = SandboxRecord(
            id: "sb_envseal1", accountID: "acc_env", template: "playground", state: .running, createdAt: 1, timeoutSeconds: 0,
            expiresAt: nil, lastActivityAt: 1, metadata: [:], env: ["DB_PASSWORD": secret, "PLAIN": "x"], vaultInject: false,
            cpuCount: 1, memoryMB: 256)
        try await sandboxes.insert(record)
        #expect(try await sandboxes.find(id: record.id)?.env == record.env)
        // Without the key (or with another one) nothing opens; the stored text is ciphertext.
        #expect(try await SandboxRepository(database: database).find(id: record.id)?.env == [:])
        let other = SandboxRepository(database: database, envSealer: SandboxEnvSealer(masterKey: SymmetricKey(size: .bits256)))
        #expect(try await other.find(id: record.id)?.env == [:])
        let stored = try await database.query("SELECT env FROM sandboxes WHERE id = ?", [.text(record.id)]).first?.optionalString("env")
        #expect(stored?.hasPrefix("v1:") == true && stored?.contains(secret) == false)
        // Copied onto another sandbox's row, it does not open there.
        record.id = "sb_envseal2"
        record.env = [:]
        try await sandboxes.insert(record)
        try await database.query("UPDATE sandboxes SET env = ? WHERE id = ?", [.text(stored ?? ""), .text(record.id)])
        #expect(try await sandboxes.find(id: record.id)?.env == [:])
        // A row from before sealing (JSON in the clear) is read as it is.
        try await database.query("UPDATE sandboxes SET env = ? WHERE id = ?", [.text("{\"OLD\":\"1\"}"), .text(record.id)])
        #expect(try await sandboxes.find(id: record.id)?.env == ["OLD": "1"])
        await database.close()
        for suffix in ["", "-wal"] {
            let file = (try? Data(contentsOf: URL(fileURLWithPath: path + suffix))) ?? Data()
            #expect(file.range(of: Data(secret.utf8)) == nil, "the value is in the database\(suffix)")
        }
    }
}
