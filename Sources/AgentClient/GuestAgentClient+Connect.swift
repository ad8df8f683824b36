import AgentProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import OmniRunError

/// Connecting to an agent: attempts, the starved guest's extra time, the port's one byte stream.
extension GuestAgentClient {
    /// Connects and waits until the agent answers `health` (or takes `identity`), retrying
    /// until `timeout`.
    public static func connect(
        socketPath: String, name: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        timeout: Duration = .seconds(10), logger: Logger = Logger(label: "omnirun.agent-client"),
        starvedFor: (@Sendable () async -> Duration)? = nil,
        giveUpIf: @escaping @Sendable () async -> String? = { nil },
        identity: (@Sendable () -> InitRequest)? = nil
    ) async throws -> GuestAgentClient {
        // `timeout` counts the guest's own chances to run: time the machine spent
        // waiting for a host CPU (`starvedFor`) is added, up to four times `timeout`.
        // On an overloaded host a restore can take many seconds of wall clock without
        // anything being wrong with the guest.
        let started = ContinuousClock.now
        var deadline = started + timeout
        func extend() async {
            guard let starvedFor else { return }
            deadline = started + timeout + min(await starvedFor(), timeout * 3)
        }
        var lastError: (any Error)? = nil
        var connections = 0
        while ContinuousClock.now < deadline {
            if let reason = await giveUpIf() {
                throw OmniRunError(.machineFailed, "\(name) stopped before its agent answered: \(reason)")
            }
            let connection: AgentConnection
            do {
                connection = try await AgentConnection.connect(socketPath: socketPath, group: group)
            } catch {
                // QEMU has not created its socket yet.
                lastError = error
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            connections += 1
            let client = GuestAgentClient(name: name, connection: connection, logger: logger)
            // Ask again on the same connection while it stays up: a slow guest answers
            // late, and dropping the connection only makes it start over. But not for
            // ever: a guest that missed the port's open event (the host connected while
            // a restore was loading the device state) only hears of a new connection.
            // An attempt spent mostly waiting for a host CPU gave the guest no real
            // chance and does not count: on an overloaded host, dropping connections
            // the guest is still setting up made it start over again and again.
            var attempts = 0
            while ContinuousClock.now < deadline, connection.isActive, attempts < 3 {
                let remaining = deadline - ContinuousClock.now
                let attemptTimeout = min(max(remaining, .milliseconds(50)), .seconds(3))
                let starvedAtStart = await starvedFor?() ?? .zero
                do {
                    // With an identity, the first exchange gives it (one exchange fewer
                    // for a fresh guest, whose every new code path is translated first);
                    // made per attempt, so that the clock it sets is now.
                    if let identity {
                        _ = try await client.initialize(identity(), timeout: attemptTimeout)
                    } else {
                        _ = try await client.health(timeout: attemptTimeout)
                    }
                    // A connection given up on may have had its requests read by the guest
                    // after all: they come first in the port's one byte stream, this
                    // connection's preface after them, and the agent, reading a preface in
                    // the middle of a session, answers GOAWAY (the answer just read may have
                    // been to the old request). A second exchange shows whether this
                    // session is the agent's own.
                    if connections > 1 {
                        _ = try await client.health(timeout: attemptTimeout)
                        guard connection.isActive else {
                            throw OmniRunError(.unavailable, connection.violations.goAway ?? "the agent closed the connection")
                        }
                    }
                    connection.established.withLockedValue { $0 = true }
                    return client
                } catch let error as OmniRunError where error.code == .protocolViolation {
                    // A lying agent does not get better by being asked again. On a later
                    // connection, frames of an abandoned one's session may arrive first: the
                    // HTTP/2 layer's complaints there are the port's history, not a lie.
                    guard connections > 1, connection.violations.error?.hasPrefix(AgentConnection.brokeHTTP2) == true else {
                        await connection.close()
                        throw error
                    }
                    lastError = error
                    break
                } catch {
                    lastError = error
                    let starved = (await starvedFor?() ?? .zero) - starvedAtStart
                    if starved < attemptTimeout / 2 { attempts += 1 }
                    await extend()
                    if let reason = await giveUpIf() {
                        await connection.close()
                        throw OmniRunError(.machineFailed, "\(name) stopped before its agent answered: \(reason)")
                    }
                }
            }
            // After a GOAWAY the guest must see this connection end before the next one
            // starts, or it carries the broken session on into it: give it time to run.
            let closedByAgent = connection.violations.goAway != nil || connection.violations.error != nil
            await connection.close()
            try await Task.sleep(for: .milliseconds(closedByAgent ? 500 : 50))
            await extend()
        }
        throw OmniRunError(
            .timeout, "the agent of \(name) did not answer within \(deadline - started)",
            cause: lastError.map { OmniRunError(.unavailable, "\($0)") })
    }
}
