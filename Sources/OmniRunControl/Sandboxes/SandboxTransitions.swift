/// What is being done to a sandbox that others must wait for (see
/// `SandboxService.exclusive`): pauses, resumes, forks and kills take turns.
package enum Transition: String, Sendable {
    case pause
    case resume
    case fork
    case kill
    /// A paused sandbox's saved state going to another node (a drain).
    case move

    /// The word for a caller told to wait ("sandbox … is being paused").
    package var pastParticiple: String {
        switch self {
        case .pause: "paused"
        case .resume: "resumed"
        case .fork: "forked"
        case .kill: "killed"
        case .move: "moved to another node"
        }
    }
}

/// Why a sandbox was paused (the `reason` of its `paused` webhook event and the label of
/// `omnirun_sandbox_pauses_total`).
package enum PauseReason: String, Sendable {
    /// `POST /sandboxes/{id}/pause`.
    case requested
    /// Its timeout passed and it asked to pause rather than end (`autoPause`).
    case timeout
    /// It was idle past the server's idle timeout and asked to pause.
    case idle
}

/// The lifecycle events an account's webhooks can subscribe to (wire protocol §11); the
/// raw values are the events' names on the wire and in the store.
package enum SandboxEvent: String, Sendable, CaseIterable {
    case created
    case paused
    case resumed
    case killed
    case timeout
    case idleKilled = "idle_killed"
    case error
}
