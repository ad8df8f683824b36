import AgentClient
import AgentProtocol
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import OmniRunError
import Testing
import TestSupport

@testable import OmniRunControl
@testable import OmniRunServer

/// The host's agent client against `HostileAgent`: a real HTTP/2 peer on a Unix socket
/// that answers every call with what no honest agent sends. Every attack ends in a clear
/// error (or a clamped value), never in a trap; memory stays bounded; answers that cannot
/// be true are reported as protocol violations (what ends a sandbox as failed).
@Suite("A hostile agent against the host's client", .serialized, .timeLimit(.minutes(10)))
struct HostileAgentClientTests {
    static func socketPath() -> String {
        "/tmp/omr-hostile-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    }

    /// An agent that answers `path` as `attack` says and everything else honestly.
    static func agent(
        _ path: String, _ attack: @escaping @Sendable (HostileAgent.Request) -> HostileAgent.Answer
    ) async throws -> HostileAgent {
        try await HostileAgent.start(path: socketPath()) { request in
            if request.path == path { return attack(request) }
            return HostileAgent.honest(request) ?? .json("{}")
        }
    }

    /// Connects the real client to a hostile agent, runs `body`, and stops both.
    static func with<T: Sendable>(
        _ path: String, _ attack: @escaping @Sendable (HostileAgent.Request) -> HostileAgent.Answer,
        _ body: (GuestAgentClient, HostileAgent, Violations) async throws -> T
    ) async throws -> T {
        let agent = try await agent(path, attack)
        let violations = Violations()
        do {
            let client = try await GuestAgentClient.connect(socketPath: agent.path, name: "sandbox hostile", timeout: .seconds(10))
            client.onProtocolViolation { violations.add($0) }
            let result = try await body(client, agent, violations)
            await client.close()
            await agent.stop()
            return result
        } catch {
            await agent.stop()
            throw error
        }
    }

    final class Violations: Sendable {
        private let seen = NIOLockedValueBox<[String]>([])
        func add(_ message: String) { seen.withLockedValue { $0.append(message) } }
        var all: [String] { seen.withLockedValue { $0 } }
    }

    static func code(_ body: () async throws -> Void) async -> OmniRunError.Code? {
        do {
            try await body()
            return nil
        } catch let error as OmniRunError {
            return error.code
        } catch {
            Issue.record("not an OmniRunError: \(error)")
            return nil
        }
    }

    final class Counter: Sendable {
        private let count = NIOLockedValueBox(0)
        func add(_ amount: Int) -> Int { count.withLockedValue { $0 += amount; return $0 } }
        var value: Int { count.withLockedValue { $0 } }
    }

    /// Once a call has failed, the host no longer takes what the agent keeps sending.
    static func expectLetGo(_ agent: HostileAgent) async throws {
        try await Task.sleep(for: .milliseconds(500))
        let sent = agent.bytesSent
        try await Task.sleep(for: .seconds(1))
        #expect(agent.bytesSent - sent < 1 << 20, "the host let go of the endless answer: \(agent.bytesSent - sent) more bytes")
    }

    /// Reads a file chunk by chunk and stops (throws) after `bytes`.
    static func readUntil(_ client: GuestAgentClient, _ seen: Counter, _ bytes: Int) async throws {
        try await client.readFile(path: "/x") { chunk in
            if seen.add(chunk.readableBytes) > bytes { throw OmniRunError(.payloadTooLarge, "enough") }
        }
    }

    static func line(_ event: ProcessEvent) -> String {
        String(decoding: (try? JSONEncoder().encode(event)) ?? Data(), as: UTF8.self)
    }

    // MARK: numbers

    @Test func extremeMetricsDecodeAndAreClampedToTheMachine() async throws {
        let watch = ResourceWatch(pid: getpid())
        let extreme = """
            {"cpuBusyTicks":18446744073709551615,"cpuTotalTicks":3,"cpuCount":9223372036854775807,
             "memTotalBytes":18446744073709551615,"memUsedBytes":18446744073709551615,
             "diskTotalBytes":18446744073709551615,"diskUsedBytes":17000000000000000000,"uptimeMillis":-9223372036854775808}
            """
        let reported = try await Self.with(AgentAPI.Path.metrics, { _ in .json(extreme) }) { client, _, violations in
            let metrics = try await client.metrics(timeout: .seconds(5))
            #expect(violations.all.isEmpty, "extreme but well-formed figures are not a protocol violation")
            return metrics
        }
        let bounds = GuestMetricsBounds(vcpus: 2, memoryBytes: 512 << 20, diskBytes: 2 << 30)
        let clamped = bounds.clamp(reported)
        #expect(clamped.cpuCount == 2)
        #expect(clamped.cpuBusyTicks <= clamped.cpuTotalTicks)
        #expect(clamped.memTotalBytes == 512 << 20 && clamped.memUsedBytes == 512 << 20)
        #expect(clamped.diskTotalBytes == 2 << 30 && clamped.diskUsedBytes == 2 << 30)
        #expect(clamped.uptimeMillis == 0)
        // Whatever the guest said, the figures convert without trapping.
        #expect(Int64(exactly: clamped.memTotalBytes) != nil && Int64(exactly: clamped.diskUsedBytes) != nil)
        #expect(bounds.clamp(GuestMetrics(
            cpuBusyTicks: 1, cpuTotalTicks: 2, cpuCount: -7, memTotalBytes: 0, memUsedBytes: 9, diskTotalBytes: 1,
            diskUsedBytes: 2, uptimeMillis: 5)).cpuCount == 0)

        // The issue's attack, parsed as the guest agent parses it: a forged MemTotal past Int64.
        let forged = GuestMetrics.parse(
            stat: "cpu  18446744073709551615 18446744073709551615 18446744073709551615 5 5 18446744073709551615 1 1\n",
            meminfo: "MemTotal:       17000000000000000 kB\nMemAvailable: 18446744073709551615 kB\n")
        #expect(forged.memTotal == UInt64(17_000_000_000_000_000) * 1024)
        #expect(forged.busy == .max && forged.total == .max, "sums saturate instead of trapping in the agent")
        let parsed = GuestMetrics(
            cpuBusyTicks: forged.busy, cpuTotalTicks: forged.total, cpuCount: 1, memTotalBytes: forged.memTotal,
            memUsedBytes: forged.memUsed, diskTotalBytes: 0, diskUsedBytes: 0, uptimeMillis: 1)
        #expect(bounds.clamp(parsed).memTotalBytes == 512 << 20)
        reportFigures("client: extreme metrics (UInt64.max, Int.max, Int64.min)", await watch.finish(settle: .zero), outcome: "clamped")
    }

    @Test func malformedAnswersAreProtocolViolationsReportedOnce() async throws {
        let watch = ResourceWatch(pid: getpid())
        let deep = String(repeating: "[", count: 30_000) + String(repeating: "]", count: 30_000)
        let bodies = [
            #"{"cpuBusyTicks":1,"cpuTotalTicks":2,"cpuCo"#,  // truncated
            #"{"cpuBusyTicks":-1,"cpuTotalTicks":2,"cpuCount":1,"memTotalBytes":1,"memUsedBytes":1,"diskTotalBytes":1,"diskUsedBytes":1,"uptimeMillis":1}"#,
            #"{"cpuBusyTicks":1e400,"cpuTotalTicks":2,"cpuCount":1,"memTotalBytes":1,"memUsedBytes":1,"diskTotalBytes":1,"diskUsedBytes":1,"uptimeMillis":1}"#,
            #"{"cpuBusyTicks":184467440737095516150,"cpuTotalTicks":2,"cpuCount":1,"memTotalBytes":1,"memUsedBytes":1,"diskTotalBytes":1,"diskUsedBytes":1,"uptimeMillis":1}"#,
            #"{"cpuBusyTicks":"many","cpuTotalTicks":2}"#,
            deep,
            "\u{0}\u{1}not json at all",
            "",
        ]
        for body in bodies {
            try await Self.with(AgentAPI.Path.metrics, { _ in .json(body) }) { client, _, violations in
                let code = await Self.code { _ = try await client.metrics(timeout: .seconds(5)) }
                #expect(code == .protocolViolation, "\(body.prefix(60))")
                // A second lie on the same connection is not reported again.
                _ = await Self.code { _ = try await client.metrics(timeout: .seconds(5)) }
                try await Task.sleep(for: .milliseconds(50))
                #expect(violations.all.count == 1, "\(violations.all)")
                #expect(violations.all.first?.contains("the agent of sandbox hostile sent") == true, "\(violations.all)")
                #expect(client.protocolViolation != nil)
            }
        }
        reportFigures("client: malformed/truncated/30k-deep JSON metrics", await watch.finish(settle: .zero), outcome: "refused (violation)")
    }

    @Test func aLyingHealthFailsTheConnectAtOnce() async throws {
        let agent = try await Self.agent(AgentAPI.Path.health) { _ in .json(#"{"apiVersion":"two"}"#) }
        let started = ContinuousClock.now
        let code = await Self.code {
            _ = try await GuestAgentClient.connect(socketPath: agent.path, name: "sandbox hostile", timeout: .seconds(20))
        }
        #expect(code == .protocolViolation)
        #expect(ContinuousClock.now - started < .seconds(5), "a lying agent is not asked again until the timeout")
        await agent.stop()
    }

    // MARK: sizes

    @Test func oversizeAndEndlessAnswersAreRefusedWithBoundedMemory() async throws {
        let watch = ResourceWatch(pid: getpid())
        let chunk = [UInt8](repeating: UInt8(ascii: "7"), count: 64 << 10)
        // A fixed-shape answer past 64 KiB.
        try await Self.with(AgentAPI.Path.metrics, { _ in .endless(chunk: chunk) }) { client, agent, _ in
            #expect(await Self.code { _ = try await client.metrics(timeout: .seconds(10)) } == .payloadTooLarge)
            try await Self.expectLetGo(agent)
        }
        // A listing past 64 MiB.
        try await Self.with(AgentAPI.Path.fileList, { _ in .endless(chunk: chunk) }) { client, _, _ in
            #expect(await Self.code { _ = try await client.list(path: "/") } == .payloadTooLarge)
        }
        // A file read past the caller's limit, and an endless one read chunk by chunk until the caller stops.
        try await Self.with(AgentAPI.Path.fileRead, { _ in .endless(chunk: chunk) }) { client, agent, _ in
            #expect(await Self.code { let _: [UInt8] = try await client.readFile(path: "/x", limit: 1 << 20) } == .payloadTooLarge)
            let seen = Counter()
            #expect(await Self.code { try await Self.readUntil(client, seen, 8 << 20) } == .payloadTooLarge)
            try await Self.expectLetGo(agent)
        }
        // Process output past the limit; a line without an end.
        let output = ProcessEvent(type: .stdout, pid: 7, data: Data(chunk).base64EncodedString())
        let outputLine = String(decoding: try JSONEncoder().encode(output), as: UTF8.self) + "\n"
        try await Self.with(AgentAPI.Path.processStart, { _ in .endless(chunk: Array(outputLine.utf8)) }) { client, _, _ in
            let code = await Self.code { _ = try await client.run(ProcessStartRequest(shell: "yes"), limit: 4 << 20) }
            #expect(code == .payloadTooLarge)
        }
        try await Self.with(AgentAPI.Path.processStart, { _ in .endless(chunk: chunk) }) { client, _, _ in
            #expect(await Self.code { _ = try await client.run(ProcessStartRequest(shell: "yes")) } == .payloadTooLarge)
        }
        // A context event line without an end (the longest line allowed is 32 MiB).
        try await Self.with(ContextsAPI.path, { _ in .endless(chunk: chunk) }) { client, _, _ in
            let code = await Self.code { try await client.contexts(ContextRequest(op: "execute", id: "ctx_0", code: "1")) { _ in } }
            #expect(code == .payloadTooLarge)
        }
        // An error whose body never ends, and one whose message is 1 MiB.
        try await Self.with(AgentAPI.Path.fileStat, { _ in .reply(status: 500, body: chunk + chunk, hold: true) }) { client, _, _ in
            #expect(await Self.code { _ = try await client.stat(path: "/x") } != nil)
        }
        let long = String(repeating: "x", count: 40 << 10)
        try await Self.with(AgentAPI.Path.fileStat, { _ in .json(#"{"code":"not_found","message":"\#(long)"}"#, status: 404) }) {
            client, _, _ in
            do {
                _ = try await client.stat(path: "/x")
                Issue.record("a 404 was accepted")
            } catch let error as OmniRunError {
                #expect(error.code == .notFound)
                #expect(error.message.count <= 4096)
            }
        }
        let report = await watch.finish()
        #expect(report.residentMiB.after - report.residentMiB.before < 256, "\(report)")
        reportFigures("client: endless/oversize bodies, lines and errors", report, outcome: "bounded (413/violation)")
    }

    @Test func desktopCaptureSizesAreBoundedBeforeTheyAreMultiplied() async throws {
        #expect(DesktopCapture.byteCount(width: "\(Int.max)", height: "2") == nil)
        #expect(DesktopCapture.byteCount(width: "\(Int.max)", height: "\(Int.max)") == nil)
        #expect(DesktopCapture.byteCount(width: "32767", height: "32767") == nil, "past 40 million pixels")
        #expect(DesktopCapture.byteCount(width: "-1", height: "5") == nil)
        #expect(DesktopCapture.byteCount(width: "0", height: "5") == nil)
        #expect(DesktopCapture.byteCount(width: "1e9", height: "1") == nil)
        #expect(DesktopCapture.byteCount(width: nil, height: "1") == nil)
        #expect(DesktopCapture.byteCount(width: "1024", height: "768")?.count == 1024 * 768 * 3)
        let sizes: [(String, String, [UInt8], OmniRunError.Code?)] = [
            ("\(Int.max)", "\(Int.max)", [], .protocolViolation),
            ("9223372036854775807", "2", [], .protocolViolation),
            ("-4", "-4", [], .protocolViolation),
            ("2", "2", [UInt8](repeating: 9, count: 11), .protocolViolation),
            ("2", "2", [UInt8](repeating: 9, count: 4096), .payloadTooLarge),
            ("2", "2", [UInt8](repeating: 9, count: 12), nil),
        ]
        for (width, height, body, expected) in sizes {
            let headers = [(DesktopAPI.widthHeader, width), (DesktopAPI.heightHeader, height)]
            try await Self.with(DesktopAPI.Path.capture, { _ in .reply(headers: headers, body: body) }) { client, _, _ in
                let code = await Self.code { _ = try await client.desktopCapture(timeout: .seconds(5)) }
                #expect(code == expected, "\(width)×\(height), \(body.count) bytes")
            }
        }
        // Headers that promise a capture and a body that never comes: the call's timeout.
        let promise = [(DesktopAPI.widthHeader, "1024"), (DesktopAPI.heightHeader, "768")]
        try await Self.with(DesktopAPI.Path.capture, { _ in .reply(headers: promise, body: [1, 2, 3], hold: true) }) { client, _, _ in
            #expect(await Self.code { _ = try await client.desktopCapture(timeout: .seconds(1)) } == .timeout)
        }
    }

    // MARK: pids, stalls

    @Test func impossiblePidsAreRefused() async throws {
        for line in [#"{"type":"start","pid":0}"#, #"{"type":"start","pid":-5}"#, #"{"type":"start"}"#, #"{"type":"start","pid":99999999999}"#] {
            try await Self.with(AgentAPI.Path.processStart, { _ in .lines([line], hold: true) }) { client, _, violations in
                let code = await Self.code { _ = try await client.startDetached(ProcessStartRequest(shell: "sleep 1")) }
                #expect(code == .protocolViolation, "\(line)")
                try await Task.sleep(for: .milliseconds(50))
                #expect(violations.all.count == 1, "\(line): \(violations.all)")
            }
        }
    }

    @Test func stallsEndInTimeouts() async throws {
        try await Self.with(AgentAPI.Path.metrics, { _ in .stall }) { client, _, _ in
            let started = ContinuousClock.now
            #expect(await Self.code { _ = try await client.metrics(timeout: .seconds(1)) } == .timeout)
            #expect(ContinuousClock.now - started < .seconds(5))
            // The connection is still good for other calls.
            _ = try await client.health(timeout: .seconds(5))
        }
        // A process whose start or end never comes: the host's own deadlines.
        try await Self.with(AgentAPI.Path.processStart, { _ in .stall }) { client, _, _ in
            let request = ProcessStartRequest(shell: "sleep 1", timeoutMillis: 1000)
            #expect(await Self.code { _ = try await client.run(request, timeout: .seconds(1)) } == .timeout)
            #expect(await Self.code { _ = try await client.startDetached(request, startTimeout: .seconds(1)) } == .timeout)
        }
        let started = Self.line(ProcessEvent(type: .start, pid: 9))
        try await Self.with(AgentAPI.Path.processStart, { _ in .lines([started], hold: true) }) { client, _, _ in
            let request = ProcessStartRequest(shell: "sleep 1", timeoutMillis: 1000)
            #expect(await Self.code { _ = try await client.run(request, timeout: .seconds(1)) } == .timeout)
        }
        let agent = try await Self.agent(AgentAPI.Path.health) { _ in .stall }
        let code = await Self.code {
            _ = try await GuestAgentClient.connect(socketPath: agent.path, name: "sandbox stalled", timeout: .seconds(2))
        }
        #expect(code == .timeout)
        await agent.stop()
    }

    // MARK: HTTP/2 itself

    @Test func bytesThatBreakHTTP2EndTheConnectionAsAViolation() async throws {
        let watch = ResourceWatch(pid: getpid())
        let attacks: [(String, @Sendable (Int) -> [UInt8])] = [
            ("oversized frame", HostileAgent.Frames.oversized), ("garbage", HostileAgent.Frames.garbage),
            ("push promise", HostileAgent.Frames.pushPromise), ("window overflow", HostileAgent.Frames.windowOverflow),
            ("bad settings", HostileAgent.Frames.badSettings), ("bad header block", HostileAgent.Frames.badHeaderBlock),
            ("continuation flood", HostileAgent.Frames.continuationFlood),
        ]
        for (name, frames) in attacks {
            try await Self.with(AgentAPI.Path.metrics, { _ in .frames(frames, close: false) }) { client, _, violations in
                let code = await Self.code { _ = try await client.metrics(timeout: .seconds(5)) }
                #expect(code == .protocolViolation, "\(name): \(String(describing: code))")
                try await Task.sleep(for: .milliseconds(200))
                #expect(violations.all.count == 1, "\(name): \(violations.all)")
                #expect(!client.isConnected, "\(name): the connection is closed")
                // Later calls fail at once.
                #expect(await Self.code { _ = try await client.health(timeout: .seconds(5)) } == .unavailable)
            }
        }
        // A frame cut off, then the connection gone: an error, not a hang.
        try await Self.with(AgentAPI.Path.metrics, { _ in .frames(HostileAgent.Frames.truncated, close: true) }) { client, _, _ in
            let code = await Self.code { _ = try await client.metrics(timeout: .seconds(5)) }
            #expect(code != nil)
        }
        reportFigures("client: frames that break HTTP/2 (7 kinds) and a truncated frame", await watch.finish(), outcome: "refused (violation)")
    }
}
