import OmniRunError

/// How a machine ended.
public enum MachineExit: Sendable, Equatable, CustomStringConvertible {
    /// Stopped because we asked.
    case requested
    /// The guest shut itself down (its agent powered off).
    case guestShutdown
    /// The VMM process died or the guest stopped answering.
    case crashed(String)
    /// Its agent sent what no honest agent sends (`GuestAgentClient.onProtocolViolation`):
    /// the host stopped the machine.
    case agentViolation(String)

    public var description: String {
        switch self {
        case .requested: "stopped on request"
        case .guestShutdown: "guest shut down"
        case .crashed(let reason): "crashed: \(reason)"
        case .agentViolation(let reason): "agent protocol violation: \(reason)"
        }
    }
}

/// The states of one virtual machine. Each state carries what is true in it.
public enum MachineState: Sendable, Equatable, CustomStringConvertible {
    case created
    case starting
    case running
    case paused
    case stopping
    case stopped(MachineExit)

    public var isTerminal: Bool {
        if case .stopped = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .created: "created"
        case .starting: "starting"
        case .running: "running"
        case .paused: "paused"
        case .stopping: "stopping"
        case .stopped(let exit): "stopped (\(exit))"
        }
    }
}

/// The legal moves between machine states; everything else throws.
public struct MachineLifecycle: Sendable {
    public private(set) var state: MachineState = .created

    public init() {}

    public mutating func transition(to next: MachineState) throws {
        guard Self.allowed(from: state, to: next) else {
            throw OmniRunError(.conflict, "illegal machine transition from \(state) to \(next)")
        }
        state = next
    }

    public static func allowed(from: MachineState, to: MachineState) -> Bool {
        switch (from, to) {
        case (.created, .starting), (.created, .stopped): true
        case (.starting, .running), (.starting, .paused), (.starting, .stopping), (.starting, .stopped): true
        case (.running, .paused), (.running, .stopping), (.running, .stopped): true
        case (.paused, .running), (.paused, .stopping), (.paused, .stopped): true
        case (.stopping, .stopped): true
        default: false
        }
    }
}
