import OmniRunError

/// Per-account quota of template builds that hold a build context on this node's disk:
/// uploading, waiting for their turn (builds run one at a time) or running. A place is taken
/// before the upload is read, so neither a flood of uploads nor a queue of large contexts
/// can fill the disk: at most `maxBuilds` builds and `maxBytes` of contexts per account.
package actor BuildQuota {
    package struct Ticket: Hashable, Sendable {
        package let accountID: String
        package let id: Int
    }

    package nonisolated let maxBuilds: Int
    package nonisolated let maxBytes: Int
    /// Bytes each ticket holds: while uploading, all it may still use; then its context's size.
    private var held: [String: [Int: Int]] = [:]
    private var nextID = 0

    package init(maxBuilds: Int, maxBytes: Int) {
        self.maxBuilds = max(1, maxBuilds)
        self.maxBytes = max(1, maxBytes)
    }

    /// A place for one more build of this account, and how large its context may be
    /// (at most `largest`, the server's limit for one context).
    package func reserve(accountID: String, largest: Int) throws -> (ticket: Ticket, allowance: Int) {
        let mine = held[accountID, default: [:]]
        guard mine.count < maxBuilds else {
            throw OmniRunError(
                .limitReached,
                "template build quota reached: this account may have \(maxBuilds) builds uploading, queued or running at once; wait for one to finish")
        }
        let used = mine.values.reduce(0, +)
        let allowance = min(largest, maxBytes - used)
        guard allowance > 0 else {
            throw OmniRunError(
                .limitReached,
                "template build quota reached: this account's queued build contexts hold \(used >> 20) MiB of \(maxBytes >> 20) MiB; wait for a build to finish")
        }
        nextID += 1
        let ticket = Ticket(accountID: accountID, id: nextID)
        held[accountID, default: [:]][ticket.id] = allowance
        return (ticket, allowance)
    }

    /// The upload is read: the ticket now holds its context's real size.
    package func settle(_ ticket: Ticket, bytes: Int) {
        guard held[ticket.accountID]?[ticket.id] != nil else { return }
        held[ticket.accountID]?[ticket.id] = max(0, bytes)
    }

    /// The upload failed or the build ended (its context is deleted).
    package func release(_ ticket: Ticket) {
        held[ticket.accountID]?[ticket.id] = nil
        if held[ticket.accountID]?.isEmpty == true { held[ticket.accountID] = nil }
    }

    package func usage(accountID: String) -> (builds: Int, bytes: Int) {
        let mine = held[accountID, default: [:]]
        return (mine.count, mine.values.reduce(0, +))
    }
}
