/// A bounded queue between a producer callback and a consumer loop: `send`
/// suspends while the queue is full, so a slow HTTP client slows the guest read
/// instead of growing memory.
actor StreamBridge<Element: Sendable> {
    private var buffer: [Element] = []
    private let capacity: Int
    private var finished = false
    private var failure: (any Error)?
    private var consumer: CheckedContinuation<Void, Never>?
    private var producers: [CheckedContinuation<Void, Never>] = []

    init(capacity: Int = 8) {
        self.capacity = capacity
    }

    func send(_ element: Element) async throws {
        while buffer.count >= capacity && !finished {
            await withCheckedContinuation { producers.append($0) }
        }
        if finished { throw CancellationError() }
        buffer.append(element)
        consumer?.resume()
        consumer = nil
    }

    func finish(throwing error: (any Error)? = nil) {
        guard !finished else { return }
        finished = true
        failure = error
        consumer?.resume()
        consumer = nil
        for producer in producers { producer.resume() }
        producers.removeAll()
    }

    /// The next element, or nil once finished and drained.
    func next() async throws -> Element? {
        while buffer.isEmpty {
            if finished {
                if let failure { throw failure }
                return nil
            }
            await withCheckedContinuation { consumer = $0 }
        }
        let element = buffer.removeFirst()
        if !producers.isEmpty { producers.removeFirst().resume() }
        return element
    }
}

/// An AsyncSequence over a bridge, for APIs that take one.
struct BridgeSequence<Element: Sendable>: AsyncSequence, Sendable {
    let bridge: StreamBridge<Element>

    struct AsyncIterator: AsyncIteratorProtocol {
        let bridge: StreamBridge<Element>
        mutating func next() async throws -> Element? { try await bridge.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(bridge: bridge) }
}
