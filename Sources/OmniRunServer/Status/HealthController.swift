import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import OmniRunStore
import SandboxRuntime

/// `GET /health` (liveness: the process serves HTTP) and `GET /health/ready` (readiness:
/// the store answers a read and the sandbox runtime answers), both open. Readiness says
/// which check failed and answers 503 then, so a load balancer stops sending work here.
struct HealthController {
    let database: any SQLDatabase
    let runtime: SandboxRuntime
    /// How long each readiness check may take before it counts as not answering.
    var checkTimeout: Duration = .seconds(3)
    /// A readiness answer is reused this long: the route is open, so a flood of it costs
    /// the store one query a second, not one a request.
    static let reuse: Duration = .seconds(1)
    private let last = NIOLockedValueBox<(at: ContinuousClock.Instant, answer: Readiness)?>(nil)

    init(database: any SQLDatabase, runtime: SandboxRuntime) {
        self.database = database
        self.runtime = runtime
    }

    struct Check: Encodable, Sendable {
        var ok: Bool
        var milliseconds: Int
        var error: String?
    }

    struct Readiness: Encodable, Sendable {
        var ready: Bool
        var store: Check
        var runtime: Check
        var running_sandboxes: Int?
        /// With a 503, the usual error fields as well.
        var error: String?
        var message: String?
    }

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.get("/health") { _, _ -> Response in
            JSON.response(["status": "ok"])
        }
        router.get("/health/ready") { _, _ -> Response in
            let answer = await readiness()
            return JSON.response(answer, status: answer.ready ? .ok : .serviceUnavailable)
        }
        return router
    }

    func readiness() async -> Readiness {
        let now = ContinuousClock.now
        if let cached = last.withLockedValue({ $0 }), now - cached.at < Self.reuse { return cached.answer }
        let database = self.database
        let runtime = self.runtime
        // A read of a real table (the schema is there and its pages read), not just `SELECT 1`.
        let store = await Self.check(timeout: checkTimeout) {
            _ = try await database.query("SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1")
        }.check
        let (machines, running) = await Self.check(timeout: checkTimeout) { await runtime.running.count }
        let ready = store.ok && machines.ok
        var answer = Readiness(ready: ready, store: store, runtime: machines, running_sandboxes: running)
        if !ready {
            answer.error = "unavailable"
            answer.message = [store.ok ? nil : "the store", machines.ok ? nil : "the sandbox runtime"]
                .compactMap { $0 }.joined(separator: " and ") + " did not answer"
        }
        let result = answer
        last.withLockedValue { $0 = (ContinuousClock.now, result) }
        return answer
    }

    /// Runs `body` with a deadline (a part that hangs does not hold the answer up); the
    /// answer never carries the underlying error's text (this route is open), only whether
    /// and how fast the part answered.
    static func check<T: Sendable>(
        timeout: Duration, _ body: @escaping @Sendable () async throws -> T
    ) async -> (check: Check, value: T?) {
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: Result<T, CheckFailure> = await withCheckedContinuation { continuation in
            let pending = NIOLockedValueBox<CheckedContinuation<Result<T, CheckFailure>, Never>?>(continuation)
            let finish = { @Sendable (result: Result<T, CheckFailure>) in
                pending.withLockedValue { waiting in
                    waiting?.resume(returning: result)
                    waiting = nil
                }
            }
            let work = Task {
                do { finish(.success(try await body())) } catch { finish(.failure(CheckFailure("failed"))) }
            }
            Task {
                try? await Task.sleep(for: timeout)
                finish(.failure(CheckFailure("did not answer within \(timeout)")))
                work.cancel()
            }
        }
        let elapsed = clock.now - start
        let milliseconds = Int(elapsed.components.seconds) * 1000 + Int(elapsed.components.attoseconds / 1_000_000_000_000_000)
        switch outcome {
        case .success(let value): return (Check(ok: true, milliseconds: milliseconds), value)
        case .failure(let failure): return (Check(ok: false, milliseconds: milliseconds, error: failure.reason), nil)
        }
    }

    struct CheckFailure: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }
}
