import Synchronization

/// Open connections per key (a client's address, a sandbox's namespace address), refused
/// past a limit, so that one key cannot take every connection a listener allows.
public final class ConnectionCounter: Sendable {
    public let limit: Int
    private let counts = Mutex<[String: Int]>([:])

    public init(limit: Int) {
        self.limit = limit
    }

    /// Counts a connection of `key` in, or refuses it (false) when the key holds `limit`
    /// already. An admitted connection must be `release`d once.
    public func admit(_ key: String) -> Bool {
        counts.withLock { counts in
            let current = counts[key, default: 0]
            guard current < limit else { return false }
            counts[key] = current + 1
            return true
        }
    }

    public func release(_ key: String) {
        counts.withLock { counts in
            let left = counts[key, default: 1] - 1
            counts[key] = left > 0 ? left : nil
        }
    }

    /// Connections currently counted for `key`.
    public func count(_ key: String) -> Int { counts.withLock { $0[key, default: 0] } }
}
