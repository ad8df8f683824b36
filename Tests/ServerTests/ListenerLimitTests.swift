import Foundation
import NIOConcurrencyHelpers
import Testing
import TestSupport

/// One server with short listener timeouts and small caps, so that the attacks below hit
/// them within seconds: a head must arrive within 3 s, kept-alive API connections and
/// silent preview connections close after 10 s, one address may hold 100 connections on
/// each listener, each listener 400 in all.
enum LimitsServer {
    static let headerTimeout = 3.0
    static let idleTimeout = 10.0
    static let perAddress = 100
    static let perListener = 400

    static let server = Task<TestServer, any Error> {
        try await TestServer.start(
            name: "limits",
            environment: [
                "OMNIRUN_IDLE_TIMEOUT": "600", "OMNIRUN_HEADER_TIMEOUT": "\(headerTimeout)",
                "OMNIRUN_KEEPALIVE_TIMEOUT": "\(idleTimeout)", "OMNIRUN_PREVIEW_IDLE_TIMEOUT": "\(idleTimeout)",
                "OMNIRUN_MAX_CONNECTIONS_PER_ADDRESS": "\(perAddress)", "OMNIRUN_MAX_CONNECTIONS": "\(perListener)",
                "OMNIRUN_PREVIEW_MAX_CONNECTIONS": "\(perListener)",
            ])
    }

    /// A sandbox serving HTTP on port 8000 behind a public exposure (for the preview's
    /// well-behaved clients), created once.
    static let exposed = Task<(id: String, hostname: String), any Error> {
        let server = try await LimitsServer.server.value
        let client = server.client(key: try server.createKey(email: "preview-\(UUID().uuidString.prefix(8))@test.local"))
        let id = try await createSandbox(client, ["template": "playground", "timeout": 1800])
        try await ExposureServer.startGuestServer(client, id)
        let exposure = try await client.post("/sandboxes/\(id)/exposures", ["port": 8000]).object
        let expID = exposure["id"] as? String ?? ""
        _ = try await ExposureServer.waitFor("ready", client, "/sandboxes/\(id)/exposures/\(expID)")
        return (id, exposure["hostname"] as? String ?? "")
    }

    /// Well-behaved requests every 200 ms while `attack` runs, from 127.0.0.1: their
    /// statuses and the slowest answer (seconds).
    static func served<T: Sendable>(
        port: Int, host: String, path: String, during attack: @Sendable () async throws -> T
    ) async throws -> (result: T, statuses: [Int], slowest: Double) {
        let done = NIOLockedValueBox(false)
        let prober = Task {
            var statuses: [Int] = []
            var slowest = 0.0
            while !done.withLockedValue({ $0 }) {
                let started = ContinuousClock.now
                let status = (try? await RawHTTPClient.request(port: port, host: host, path, timeout: .seconds(30)))?.status ?? -1
                statuses.append(status)
                slowest = max(slowest, LoadClients.seconds(ContinuousClock.now - started))
                try? await Task.sleep(for: .milliseconds(200))
            }
            return (statuses, slowest)
        }
        let result: T
        do {
            result = try await attack()
        } catch {
            done.withLockedValue { $0 = true }
            _ = await prober.value
            throw error
        }
        done.withLockedValue { $0 = true }
        let (statuses, slowest) = await prober.value
        return (result, statuses, slowest)
    }
}

@Suite("Listener limits: slowloris, floods, idle connections, oversized heads", .serialized, .timeLimit(.minutes(10)))
struct ListenerLimitTests {
    static let slowHead = "GET /status HTTP/1.1\r\nHost: limits.localhost\r\nX-Slow: " + String(repeating: "s", count: 60)

    @Test func slowlorisClientsAreCutOffAtTheHeaderTimeoutWhileOthersAreServed() async throws {
        let server = try await LimitsServer.server.value
        let (_, hostname) = try await LimitsServer.exposed.value
        for (listener, port, host, path) in [
            ("API", server.port, "127.0.0.1", "/status"), ("preview", server.previewPort, hostname, "/hello"),
        ] {
            let watch = ServerWatch(server)
            // 40 clients, each sending its head one byte a second (30 s if nobody stops them),
            // and 10 that send a whole request first and then the next one that slowly.
            let run = try await LimitsServer.served(port: port, host: host, path: path) {
                try await withThrowingTaskGroup(of: (Bool, LoadClients.Outcome).self) { group in
                    for index in 0..<50 {
                        group.addTask {
                            let second = index >= 40
                            let prefix = second ? "GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\r\n" : ""
                            let outcome = try await LoadClients.slowloris(
                                port: port, from: "127.0.0.3", head: Self.slowHead, interval: .seconds(1), bytes: 30, prefix: prefix)
                            return (second, outcome)
                        }
                    }
                    var outcomes: [(Bool, LoadClients.Outcome)] = []
                    for try await outcome in group { outcomes.append(outcome) }
                    return outcomes
                }
            }
            let figures = await watch.finish()
            let cutAt = run.result.compactMap { $0.1.closedAt }
            for (second, outcome) in run.result {
                // Cut off about 3 s after its head began (the second request: 1 s later), never left to run.
                let closedAt = outcome.closedAt ?? 99
                #expect(closedAt >= LimitsServer.headerTimeout - 0.5 && closedAt < LimitsServer.headerTimeout + (second ? 7 : 6), "\(listener): closed at \(closedAt)")
                if second {
                    #expect(outcome.text.hasPrefix("HTTP/1.1 200"), "\(listener): \(outcome.text.prefix(200))")
                    // The preview gateway does not parse the sandbox's answers: after one, it only closes.
                    if listener == "API" { #expect(outcome.text.contains("408 Request Timeout"), "\(outcome.text.prefix(300))") }
                } else {
                    #expect(outcome.status == 408, "\(listener): \(outcome.text.prefix(300))")
                }
            }
            #expect(!run.statuses.isEmpty && run.statuses.allSatisfy { $0 == 200 }, "\(listener): \(run.statuses)")
            #expect(run.slowest < 5, "\(listener): a well-behaved request took \(run.slowest) s")
            ServerWatch.record(
                "slowloris ×50 on the \(listener) (1 byte/s)", figures,
                outcome: "bounded: cut off after \(String(format: "%.1f", cutAt.min() ?? 0))–\(String(format: "%.1f", cutAt.max() ?? 0)) s with 408; \(run.statuses.count) other requests all 200, slowest \(String(format: "%.2f", run.slowest)) s")
            #expect(figures.after.descriptors <= figures.before.descriptors + 8)
        }
    }

    @Test func silentAndIdleConnectionsClose() async throws {
        let server = try await LimitsServer.server.value
        let (_, hostname) = try await LimitsServer.exposed.value
        for (listener, port, host, path) in [
            ("API", server.port, "127.0.0.1", "/status"), ("preview", server.previewPort, hostname, "/hello"),
        ] {
            // Connected and silent: cut off at the header timeout with a 408.
            let silent = await LoadClients.flood(port: port, from: "127.0.0.1", count: 5, within: .seconds(10))
            // One request answered, then nothing: closed at the idle timeout.
            let kept = await LoadClients.flood(
                port: port, from: "127.0.0.1", count: 3, within: .seconds(10), payload: "GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\r\n")
            let deadline = ContinuousClock.now + .seconds(LimitsServer.idleTimeout + 30)
            while ContinuousClock.now < deadline, (silent.openCount + kept.openCount) > 0 {
                try await Task.sleep(for: .milliseconds(200))
            }
            for outcome in silent.outcomes.withLockedValue({ $0 }) {
                let closedAt = outcome.closedAt ?? 99
                #expect(closedAt >= LimitsServer.headerTimeout - 0.5 && closedAt < LimitsServer.headerTimeout + 6, "\(listener): \(closedAt)")
                #expect(outcome.status == 408, "\(listener): \(outcome.text)")
            }
            for outcome in kept.outcomes.withLockedValue({ $0 }) {
                let closedAt = outcome.closedAt ?? 99
                #expect(closedAt >= LimitsServer.idleTimeout - 1 && closedAt < LimitsServer.idleTimeout + 15, "\(listener): \(closedAt)")
                #expect(outcome.status == 200, "\(listener): \(outcome.text.prefix(200))")
            }
            await silent.closeAll()
            await kept.closeAll()
        }
    }

    @Test func connectionFloodsStayWithinTheCaps() async throws {
        let server = try await LimitsServer.server.value
        let (_, hostname) = try await LimitsServer.exposed.value
        for (listener, port, host, path) in [
            ("API", server.port, "127.0.0.1", "/status"), ("preview", server.previewPort, hostname, "/hello"),
        ] {
            // One address opens 2000 silent connections: it gets 100 at a time, the rest a 503.
            var watch = ServerWatch(server)
            let single = try await LimitsServer.served(port: port, host: host, path: path) { () async -> (Int, Int, Int) in
                let held = await LoadClients.flood(port: port, from: "127.0.0.2", count: 2000, parallel: 48, within: .seconds(40))
                let outcomes = held.outcomes.withLockedValue { $0 }
                await held.closeAll()
                return (outcomes.count, outcomes.filter { $0.status == 503 }.count, held.failures.withLockedValue { $0 })
            }
            var figures = await watch.finish()
            let (opened, refused, failed) = single.result
            #expect(opened + failed == 2000, "\(listener)")
            #expect(refused >= 1000, "\(listener): only \(refused) of \(opened) refused")
            #expect(figures.peak.descriptors <= figures.before.descriptors + LimitsServer.perAddress + 120, "\(listener): \(figures.peak)")
            #expect(figures.after.descriptors <= figures.before.descriptors + 8, "\(listener): \(figures.after)")
            #expect(single.statuses.allSatisfy { $0 == 200 }, "\(listener): \(single.statuses)")
            #expect(single.slowest < 5, "\(listener): a well-behaved request took \(single.slowest) s")
            ServerWatch.record(
                "connection flood on the \(listener): 2000 silent connections from one address", figures,
                outcome: "bounded: \(refused) answered 503, the rest cut at the header timeout; \(single.statuses.count) other requests all 200, slowest \(String(format: "%.2f", single.slowest)) s")

            // Six addresses, 150 each (600 admitted by address > 400 per listener): the
            // listener stops accepting at 400; a well-behaved request still gets through
            // once the header timeout frees connections.
            watch = ServerWatch(server)
            let many = try await LimitsServer.served(port: port, host: host, path: path) { () async -> Int in
                await withTaskGroup(of: LoadClients.Held.self) { group in
                    for address in 4...9 {
                        group.addTask {
                            await LoadClients.flood(port: port, from: "127.0.0.\(address)", count: 150, parallel: 16, within: .seconds(20))
                        }
                    }
                    var all: [LoadClients.Held] = []
                    for await held in group { all.append(held) }
                    for held in all { await held.closeAll() }
                    return all.count
                }
            }
            figures = await watch.finish()
            #expect(figures.peak.descriptors <= figures.before.descriptors + LimitsServer.perListener + 60, "\(listener): \(figures.peak)")
            #expect(figures.after.descriptors <= figures.before.descriptors + 8, "\(listener): \(figures.after)")
            // They compete for the listen backlog with the flood: most get through, none waits for ever.
            #expect(many.statuses.filter { $0 == 200 }.count * 2 >= many.statuses.count, "\(listener): \(many.statuses)")
            #expect(many.slowest < LimitsServer.headerTimeout * 4 + 10, "\(listener): \(many.slowest)")
            ServerWatch.record(
                "connection flood on the \(listener): 900 silent connections from six addresses (cap 400)", figures,
                outcome: "bounded: at most 400 held; other requests \(many.statuses.filter { $0 == 200 }.count)/\(many.statuses.count) answered, slowest \(String(format: "%.2f", many.slowest)) s")
        }
    }

    @Test func oversizedHeadsAreRefusedWith431() async throws {
        let server = try await LimitsServer.server.value
        let (_, hostname) = try await LimitsServer.exposed.value
        let big = String(repeating: "b", count: 100 << 10)
        let fits = String(repeating: "f", count: 60 << 10)
        let api = try await RawHTTPClient.request(port: server.port, host: "127.0.0.1", "/status", headers: ["X-Big": big])
        #expect(api.status == 431)
        #expect(ExposureServer.json(api)["error"] as? String == "payload_too_large", "\(api.text)")
        #expect(api.header("connection") == "close")
        #expect(try await RawHTTPClient.request(port: server.port, host: "127.0.0.1", "/status", headers: ["X-Fits": fits]).status == 200)
        // Many small fields add up too.
        let fields = Dictionary(uniqueKeysWithValues: (0..<1200).map { ("X-F\($0)", "\(String(repeating: "v", count: 60))") })
        #expect(try await RawHTTPClient.request(port: server.port, host: "127.0.0.1", "/status", headers: fields).status == 431)
        let preview = try await RawHTTPClient.request(port: server.previewPort, host: hostname, "/", headers: ["X-Big": big])
        #expect(preview.status == 431)
        #expect(try await RawHTTPClient.request(port: server.previewPort, host: hostname, "/hello", headers: ["X-Fits": fits]).status == 200)
    }
}
