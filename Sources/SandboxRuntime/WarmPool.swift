import AgentClient
import AgentProtocol
import Foundation
import Logging
import OmniRunCore

/// Restored machines whose agents are connected and already exercised, waiting to
/// become sandboxes. Under emulation a freshly restored guest runs every code path
/// for the first time through the translator, which costs far more than the restore
/// itself; a pooled machine has done that already, so a create is only the identity
/// call. Trades memory (one idle guest each) for latency; size 0 disables it.
actor WarmPool {
    struct Entry: Sendable {
        let id: SandboxID
        let machine: any MachineInstance
        let agent: GuestAgentClient
    }

    private let size: Int
    private let logger: Logger
    private var ready: [String: [Entry]] = [:]
    private var filling: Set<String> = []
    private var fillers: [String: Task<Void, Never>] = [:]
    private var closed = false
    /// Machines being restored for the pool right now (their folders are not orphans).
    private var restoring: Set<SandboxID> = []

    init(size: Int, logger: Logger) {
        self.size = size
        self.logger = logger
    }

    var isEnabled: Bool { size > 0 }

    func take(_ template: String) async -> Entry? {
        while var entries = ready[template], !entries.isEmpty {
            let entry = entries.removeFirst()
            ready[template] = entries
            if await entry.machine.state == .running, entry.agent.isConnected { return entry }
            await entry.agent.close()
            await entry.machine.destroy()
        }
        return nil
    }

    func count(_ template: String) -> Int { ready[template]?.count ?? 0 }

    func machines(_ template: String) -> [any MachineInstance] { ready[template]?.map(\.machine) ?? [] }

    func beginRestore(_ id: SandboxID) { restoring.insert(id) }
    func endRestore(_ id: SandboxID) { restoring.remove(id) }

    /// Whether a machine folder belongs to the pool (ready or being restored).
    func owns(_ id: SandboxID) -> Bool {
        restoring.contains(id) || ready.values.contains { $0.contains { $0.id == id } }
    }

    /// Tops the pool up to its size, one machine at a time, in the background.
    func refill(_ template: String, make: @escaping @Sendable () async throws -> Entry) {
        guard size > 0, !closed, !filling.contains(template) else { return }
        filling.insert(template)
        fillers[template] = Task {
            var failures = 0
            while self.needsMore(template) {
                do {
                    let entry = try await make()
                    await self.add(template, entry)
                    failures = 0
                } catch {
                    failures += 1
                    self.logger.warning(
                        "warm pool refill failed", metadata: ["template": "\(template)", "error": "\(error)", "attempt": "\(failures)"])
                    if failures >= 3 { break }
                    try? await Task.sleep(for: .seconds(failures))
                }
            }
            self.doneFilling(template)
        }
    }

    private func needsMore(_ template: String) -> Bool {
        !closed && (ready[template]?.count ?? 0) < size
    }

    private func add(_ template: String, _ entry: Entry) async {
        if closed {
            await entry.agent.close()
            await entry.machine.destroy()
            return
        }
        ready[template, default: []].append(entry)
    }

    private func doneFilling(_ template: String) {
        filling.remove(template)
        fillers[template] = nil
    }

    /// Destroys every pooled machine and stops refilling.
    func drain() async {
        closed = true
        // A machine being restored right now is destroyed when it arrives: wait for it,
        // so that nothing outlives the drain.
        for filler in fillers.values { await filler.value }
        let all = ready.values.flatMap { $0 }
        ready.removeAll()
        for entry in all {
            await entry.agent.close()
            await entry.machine.destroy()
        }
    }

    /// Runs the paths every sandbox's first calls take, so they are translated already.
    static func exercise(_ agent: GuestAgentClient) async throws {
        _ = try await agent.health()
        _ = try await agent.initialize(
            InitRequest(
                sandboxID: "warm", hostname: "omnirun", env: [:],
                unixTimeNanos: Int64(Date().timeIntervalSince1970 * 1_000_000_000),
                entropy: hostEntropy(), defaultUser: "user"))
        for _ in 0..<2 {
            _ = try await agent.run(ProcessStartRequest(argv: ["/bin/true"]))
            // Output on both streams, through the shell as the API runs commands.
            _ = try await agent.run(ProcessStartRequest(shell: "echo warm; echo warm >&2"))
        }
        _ = try await agent.writeFile(path: "/tmp/.omnirun-warm", bytes: Array("warm".utf8))
        let _: [UInt8] = try await agent.readFile(path: "/tmp/.omnirun-warm")
        _ = try await agent.stat(path: "/tmp/.omnirun-warm")
        _ = try await agent.list(path: "/tmp")
        try await agent.remove(path: "/tmp/.omnirun-warm")
        // Every sandbox's programs reach the LLM proxy through the host gateway.
        try await agent.exerciseGateway()
    }
}

/// 64 bytes from the host's RNG, base64, for a guest's identity call (snapshot hygiene).
func hostEntropy() -> String {
    var generator = SystemRandomNumberGenerator()
    return Data((0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
}
