import CAgentSupport
import NIOConcurrencyHelpers

/// Whether output of a process is still on its way to the process table: bytes in its
/// pipes (or terminal) not read yet, or read but not yet recorded. A process that has
/// exited is ended only once this is false (or after a bounded wait: a background child
/// may keep writing to the pipes it inherited).
final class PendingOutput: Sendable {
    private struct State {
        var openDescriptors: Set<Int32> = []
        var inFlightBytes = 0
    }

    private let state = NIOLockedValueBox(State())

    init(descriptors: [Int32]) {
        state.withLockedValue { $0.openDescriptors = Set(descriptors) }
    }

    /// The pipe's channel read `count` bytes and handed them on.
    func read(_ count: Int) {
        state.withLockedValue { $0.inFlightBytes = $0.inFlightBytes.addingReportingOverflow(count).partialValue }
    }

    /// The table recorded `count` bytes.
    func recorded(_ count: Int) {
        state.withLockedValue { $0.inFlightBytes = max(0, $0.inFlightBytes - count) }
    }

    /// The channel of `descriptor` closed (its descriptor is not asked any more).
    func closed(_ descriptor: Int32) {
        _ = state.withLockedValue { $0.openDescriptors.remove(descriptor) }
    }

    var isPending: Bool {
        state.withLockedValue { state in
            state.inFlightBytes > 0 || state.openDescriptors.contains { omr_readable_bytes($0) > 0 }
        }
    }
}
