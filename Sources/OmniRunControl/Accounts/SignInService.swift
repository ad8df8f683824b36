import Crypto
import Foundation
import Logging
import OmniRunError
import OmniRunStore

/// How sign-in by email behaves.
public struct SignInSettings: Sendable {
    /// `OMNIRUN_SIGNIN_CODE_TTL`: seconds a code and its link stay valid (10 minutes).
    public var codeLifetimeSeconds: Int64 = 600
    /// Wrong codes before a code locks (a new one must be requested).
    public var maxAttempts = 5
    /// `OMNIRUN_SIGNIN_EMAIL_LIMIT`: emails to one address per window.
    public var perEmailLimit = 5
    /// `OMNIRUN_SIGNIN_IP_LIMIT`: emails requested from one client address per window.
    public var perAddressLimit = 30
    /// The rate limits' window (15 minutes).
    public var windowSeconds: Int64 = 900
    /// `OMNIRUN_SESSION_TTL`: seconds a sign-in's token lives (30 days; 0 = no expiry).
    public var sessionLifetimeSeconds: Int64 = 30 * 86400
    /// `OMNIRUN_SIGNUP`: who may create an account by signing in (default `closed`).
    public var signUp = SignUpPolicy.closed

    public init() {}
}

/// Sign-in by email: one message with a link and a 6-digit code; either signs in once.
/// Codes and links are stored as hashes. The first sign-in of an address creates the
/// account and its vault.
package struct SignInService: Sendable {
    package let logins: LoginRepository
    package let accounts: AccountRepository
    package let vault: VaultService
    package let mailer: Mailer
    package let settings: SignInSettings
    package let configuration: ServerConfiguration
    /// Keys the code hashes, so the table alone does not give codes away by brute force.
    package let secret: [UInt8]
    package let logger: Logger

    package struct SignedIn: Sendable {
        package var token: String
        package var tokenID: String
        package var expiresAt: Int64?
        package var account: AccountRecord
        package var newAccount: Bool
    }

    // MARK: request

    package func request(email text: String?, from address: String) async throws -> (email: String, expiresIn: Int64) {
        let email = try EmailAddress.normalize(text)
        // No mail goes to an address that could not sign in anyway.
        if !settings.signUp.permits(email), try await accounts.find(email: email) == nil {
            logger.info("sign-in refused: sign-up is not open for this address", metadata: ["email": "\(email)"])
            throw settings.signUp.refusal
        }
        let now = nowMillis()
        let windowStart = now - settings.windowSeconds * 1000
        if try await logins.count(email: email, since: windowStart) >= settings.perEmailLimit {
            throw OmniRunError(
                .limitReached, "too many sign-in emails to this address; wait \(settings.windowSeconds / 60) minutes")
        }
        if try await logins.count(ip: address, since: windowStart) >= settings.perAddressLimit {
            throw OmniRunError(.limitReached, "too many sign-in requests from this address; wait a few minutes")
        }
        let id = randomID("lc_", bytes: 12)
        let code = Self.newCode()
        let link = base64URL(randomBytes(32))
        try await logins.insert(
            LoginChallengeRecord(
                id: id, email: email, ip: address, codeHash: codeHash(id: id, code: code), linkHash: Secrets.sha256Hex(link),
                createdAt: now, expiresAt: now + settings.codeLifetimeSeconds * 1000))
        let minutes = settings.codeLifetimeSeconds / 60
        let url = configuration.baseURL + "/auth/magic-link/verify?token=" + link
        let text = """
            Your OmniRun sign-in code is \(code)

            Enter it where you asked to sign in, or open this link:
            \(url)

            The code and the link work once and expire in \(minutes) minutes.
            If you did not ask to sign in, ignore this email.
            """
        try await mailer.send(to: email, subject: "Your OmniRun sign-in code: \(code)", text: text)
        logger.info("sign-in email sent", metadata: ["email": "\(email)", "challenge": "\(id)"])
        if Int.random(in: 0..<50) == 0 { try? await logins.purge(before: now - 86_400_000) }
        return (email, settings.codeLifetimeSeconds)
    }

    // MARK: verify

    package func verify(email text: String?, code: String?) async throws -> SignedIn {
        let email = try EmailAddress.normalize(text)
        guard let code = code?.trimmingCharacters(in: .whitespaces), code.count == 6, code.allSatisfy(\.isASCII),
            code.allSatisfy(\.isNumber)
        else {
            throw OmniRunError(.invalidArgument, "code must be the 6 digits from the email")
        }
        guard let challenge = try await logins.latest(email: email) else {
            throw OmniRunError(.unauthorized, "invalid code: no sign-in code was sent to this address")
        }
        // The attempt is counted before the code is compared, in one conditional statement:
        // parallel guesses share the same 5 tries.
        guard let attempts = try await logins.takeAttempt(id: challenge.id, at: nowMillis(), maxAttempts: settings.maxAttempts)
        else {
            try check(try await logins.latest(email: email) ?? challenge)
            throw OmniRunError(.limitReached, "too many wrong codes: this code is locked; request a new one")
        }
        guard Secrets.equal(codeHash(id: challenge.id, code: code), challenge.codeHash) else {
            if attempts >= settings.maxAttempts {
                throw OmniRunError(.limitReached, "invalid code, and that was the last try: this code is now locked; request a new one")
            }
            throw OmniRunError(
                .unauthorized, "invalid code (\(settings.maxAttempts - attempts) more tries before it locks)")
        }
        guard try await logins.consumeCode(id: challenge.id, at: nowMillis()) else {
            throw OmniRunError(.unauthorized, "this code was already used or has expired; request a new one")
        }
        return try await signIn(challenge)
    }

    package func verify(link: String?) async throws -> SignedIn {
        guard let link, !link.isEmpty, link.count <= 128 else {
            throw OmniRunError(.invalidArgument, "token (from the sign-in link) is required")
        }
        guard let challenge = try await logins.find(linkHash: Secrets.sha256Hex(link)) else {
            throw OmniRunError(.unauthorized, "this sign-in link is not valid")
        }
        try check(challenge)
        guard try await logins.consume(id: challenge.id, at: nowMillis(), maxAttempts: settings.maxAttempts) else {
            throw OmniRunError(.unauthorized, "this code was already used or has expired; request a new one")
        }
        return try await signIn(challenge)
    }

    private func check(_ challenge: LoginChallengeRecord) throws {
        if challenge.consumedAt != nil {
            throw OmniRunError(.unauthorized, "this code was already used; request a new one")
        }
        if challenge.expiresAt <= nowMillis() {
            throw OmniRunError(.unauthorized, "this code has expired; request a new one")
        }
        if challenge.attempts >= settings.maxAttempts {
            throw OmniRunError(.limitReached, "too many wrong codes: this code is locked; request a new one")
        }
    }

    /// A used challenge becomes a session token (and, the first time, an account if the
    /// sign-up policy allows one).
    private func signIn(_ challenge: LoginChallengeRecord) async throws -> SignedIn {
        var newAccount = false
        let account: AccountRecord
        if let existing = try await accounts.find(email: challenge.email) {
            account = existing
        } else {
            // The policy may have changed since the email was sent.
            guard settings.signUp.permits(challenge.email) else { throw settings.signUp.refusal }
            let fresh = AccountRecord(
                id: randomID("acc_"), email: challenge.email, role: .user,
                concurrentLimit: configuration.defaultConcurrentLimit, createdAt: nowMillis())
            do {
                try await accounts.create(fresh)
                account = fresh
                newAccount = true
            } catch let error as OmniRunError where error.code == .alreadyExists {
                guard let raced = try await accounts.find(email: challenge.email) else { throw error }
                account = raced
            }
        }
        try await vault.initialize(account)
        let lifetime = settings.sessionLifetimeSeconds
        let expiresAt = lifetime > 0 ? nowMillis() + lifetime * 1000 : nil
        let (id, token) = try await TokenIssuer(accounts: accounts).issue(account: account, name: "session", expiresAt: expiresAt)
        logger.info(
            "signed in", metadata: ["account": "\(account.id)", "email": "\(account.email)", "new": "\(newAccount)"])
        return SignedIn(token: token, tokenID: id, expiresAt: expiresAt, account: account, newAccount: newAccount)
    }

    // MARK: codes

    package static func newCode() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = UInt32.random(in: 0...999_999, using: &generator)
        let digits = String(value)
        return String(repeating: "0", count: 6 - digits.count) + digits
    }

    package func codeHash(id: String, code: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(id):\(code)".utf8), using: SymmetricKey(data: secret))
        return Data(mac).map { String(format: "%02x", $0) }.joined()
    }
}

/// Makes `omr_` tokens: random, shown once, stored as SHA-256 hashes.
package struct TokenIssuer: Sendable {
    package let accounts: AccountRepository

    package func issue(account: AccountRecord, name: String, expiresAt: Int64?) async throws -> (id: String, token: String) {
        let token = APIKeys.generate()
        let id = randomID("key_")
        try await accounts.addKey(
            id: id, accountID: account.id, name: name, hash: APIKeys.hash(token), prefix: APIKeys.prefix(token),
            expiresAt: expiresAt)
        return (id, token)
    }

    package init(accounts: AccountRepository) {
        self.accounts = accounts
    }
}
