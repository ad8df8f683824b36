import OmniRunError

/// Who may create an account by signing in with an emailed code or link
/// (`OMNIRUN_SIGNUP`). Accounts that exist (the owner, keys made with `omnirun key create`)
/// may always sign in; the policy decides only about new ones.
public enum SignUpPolicy: Sendable, Equatable {
    /// Any valid address.
    case open
    /// None: accounts come only from `omnirun key create` (the default).
    case closed
    /// These addresses, and any address at these domains (the domain exactly, not its subdomains).
    case allowList(addresses: Set<String>, domains: Set<String>)

    /// `open`, `closed`, or a comma-separated list of addresses (`alice@example.com`) and
    /// domains (`example.com` or `@example.com`).
    public static func parse(_ text: String) throws -> SignUpPolicy {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed == "open" { return .open }
        if trimmed == "closed" || trimmed.isEmpty { return .closed }
        var addresses: Set<String> = []
        var domains: Set<String> = []
        for item in trimmed.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            if item.hasPrefix("@") || !item.contains("@") {
                let domain = String(item.drop { $0 == "@" })
                guard EmailAddress.isValid("x@" + domain) else {
                    throw OmniRunError(.invalidArgument, "OMNIRUN_SIGNUP: '\(item)' is not a domain")
                }
                domains.insert(domain)
            } else {
                guard EmailAddress.isValid(item) else {
                    throw OmniRunError(.invalidArgument, "OMNIRUN_SIGNUP: '\(item)' is not an email address")
                }
                addresses.insert(item)
            }
        }
        guard !addresses.isEmpty || !domains.isEmpty else {
            throw OmniRunError(.invalidArgument, "OMNIRUN_SIGNUP must be open, closed, or a list of addresses and domains")
        }
        return .allowList(addresses: addresses, domains: domains)
    }

    /// Whether a new account may be made for this (normalized) address.
    package func permits(_ email: String) -> Bool {
        switch self {
        case .open: return true
        case .closed: return false
        case .allowList(let addresses, let domains):
            guard let at = email.lastIndex(of: "@") else { return false }
            return addresses.contains(email) || domains.contains(String(email[email.index(after: at)...]))
        }
    }

    package var refusal: OmniRunError {
        OmniRunError(
            .forbidden,
            "sign-up is not open on this server for this address: ask the operator for an API key (omnirun key create)")
    }
}
