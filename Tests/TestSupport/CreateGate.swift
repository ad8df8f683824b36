/// Admits a few sandbox creates at a time across every test server of the test process.
/// Each server limits its own creates, but several servers run at once in the suite, and
/// under emulation a burst of restores on a small machine makes agents miss their
/// deadline.
public actor CreateGate {
    public static let shared = CreateGate(limit: 2)

    private let limit: Int
    private var active = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init(limit: Int) {
        self.limit = max(1, limit)
    }

    public func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        if active < limit {
            active += 1
        } else {
            await withCheckedContinuation { waiters.append($0) }
        }
        defer {
            if waiters.isEmpty { active -= 1 } else { waiters.removeFirst().resume() }
        }
        return try await body()
    }
}
