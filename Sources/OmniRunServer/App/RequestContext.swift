import Hummingbird
import Logging
import OmniRunControl
import OmniRunStore

/// Per-request context: the authenticated account, if any.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var account: AccountRecord?
    /// Set when the request was admitted by a signed URL instead of a key.
    public var signedSandboxID: String?
    /// What that signed URL allows (method, path, user); the file routes use these values.
    var signedGrant: URLSigner.Grant?
    /// Set when the request came from inside this sandbox, through its host gateway
    /// (the account is then the sandbox's owner).
    public var gatewaySandboxID: String?
    /// The client's IP address (`sandbox` for calls through a host gateway), for rate limits.
    public var clientAddress: String
    /// The node that made this call, when it was signed by one (`NodeAuthMiddleware`).
    public var callingNode: String?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.clientAddress = source.channel.remoteAddress?.ipAddress ?? "local"
    }

    /// Large uploads stream; JSON bodies are bounded where they are decoded.
    public var maxUploadSize: Int { 16 << 20 }

    func requireAccount() throws -> AccountRecord {
        guard let account else { throw OmniRunError(.unauthorized, "missing or invalid API key") }
        return account
    }
}

import OmniRunError
