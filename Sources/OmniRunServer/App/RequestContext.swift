import Hummingbird
import Logging
import OmniRunStore

/// Per-request context: the authenticated account, if any.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var account: AccountRecord?
    /// Set when the request was admitted by a signed URL instead of a key.
    public var signedSandboxID: String?

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }

    /// Large uploads stream; JSON bodies are bounded where they are decoded.
    public var maxUploadSize: Int { 16 << 20 }

    func requireAccount() throws -> AccountRecord {
        guard let account else { throw OmniRunError(.unauthorized, "missing or invalid API key") }
        return account
    }
}

import OmniRunError
