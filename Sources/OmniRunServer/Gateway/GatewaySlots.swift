/// How many guest connections one sandbox's host gateway takes: the host keeps a few
/// `gatewayAccept` requests waiting in the agent and serves at most `limit` connections at
/// once, so that waiting requests and served connections together never pass `limit`. The
/// guest decides how many connections it opens; only what the host asks for reaches it
/// (an agent that answers every request at once still gets no more than `limit`).
struct GatewaySlots: Sendable, Equatable {
    /// Connections served at once.
    let limit: Int
    /// Accept requests kept waiting while there is room.
    let spare: Int
    private(set) var serving = 0
    private(set) var waiting = 0

    init(limit: Int, spare: Int = 3) {
        self.limit = max(1, limit)
        self.spare = max(1, spare)
    }

    /// How many accept requests to send now (counted as waiting).
    mutating func toOpen() -> Int {
        let wanted = min(spare, limit - serving) - waiting
        guard wanted > 0 else { return 0 }
        waiting += wanted
        return wanted
    }

    /// A waiting request got a guest connection.
    mutating func accepted() {
        waiting = max(0, waiting - 1)
        serving += 1
    }

    /// A waiting request ended without a connection (the agent is away, or refused).
    mutating func failed() {
        waiting = max(0, waiting - 1)
    }

    /// A served connection ended.
    mutating func ended() {
        serving = max(0, serving - 1)
    }

    var isFull: Bool { serving >= limit }
}
