import Foundation
import Logging
import OmniRunStore
import Testing

/// Nodes, leases and admissions on SQLite and PostgreSQL: racing admissions for one
/// account never pass its limit (on PostgreSQL, through separate connections of the pool,
/// as creates on different nodes would), and a down node's sandboxes end once.
@Suite("Store: nodes and admissions", .serialized)
struct NodeStoreTests {
    @Test(arguments: StoreBackends.urls)
    func leasesDrainsAdmissionsAndDownNodes(url: String) async throws {
        let database = try await Store.open(url: url, logger: Logger(label: "test"))
        defer { Task { await database.close() } }
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let nodes = NodeRepository(database: database)
        func node(_ name: String, lease: Int64) -> NodeRecord {
            NodeRecord(
                id: "\(name)-\(suffix)", region: "r-\(suffix)", advertiseURL: "http://127.0.0.1:1", startedAt: 1, leaseExpiresAt: lease,
                vcpus: 2, memoryMB: 1024, diskMB: 2048, running: 0, templates: ["playground", "node-22"], load: 0.5)
        }
        try await nodes.renew(node("a", lease: 10_000))
        var renewed = node("a", lease: 20_000)
        renewed.running = 3
        try await nodes.renew(renewed)
        try await nodes.renew(node("b", lease: 1_000))
        let a = try await nodes.find(id: "a-\(suffix)")
        #expect(a == renewed)
        #expect(a?.isUp(at: 15_000) == true)
        #expect(try await nodes.setDraining(id: "a-\(suffix)", true))
        try await nodes.renew(renewed)
        #expect(try await nodes.find(id: "a-\(suffix)")?.draining == true, "a renewal keeps the operator's drain")
        #expect(!(try await nodes.setDraining(id: "nobody-\(suffix)", true)))
        #expect(try await nodes.list().filter { $0.id.hasSuffix(suffix) }.map(\.id) == ["a-\(suffix)", "b-\(suffix)"])

        // Racing admissions for one account with a limit of 3, one running already: 2 pass.
        let accounts = AccountRepository(database: database)
        let account = AccountRecord(id: "acc_n\(suffix)", email: "n-\(suffix)@x.io", role: .user, concurrentLimit: 3, createdAt: 1)
        try await accounts.create(account)
        let sandboxes = SandboxRepository(database: database)
        let running = SandboxRecord(
            id: "sb_n\(suffix)", accountID: account.id, template: "playground", state: .running, createdAt: 5, timeoutSeconds: 300,
            expiresAt: nil, lastActivityAt: 5, metadata: [:], env: [:], vaultInject: false, cpuCount: 1, memoryMB: 256,
            nodeID: "b-\(suffix)", region: "r-\(suffix)")
        try await sandboxes.insert(running)
        #expect(try await sandboxes.find(id: running.id)?.region == "r-\(suffix)")
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for attempt in 0..<12 {
                group.addTask {
                    try await nodes.admit(
                        accountID: account.id, limit: 3, reservation: "adm_\(suffix)_\(attempt)", node: "a-\(suffix)", expiresAt: 50_000,
                        now: 100)
                }
            }
            var count = 0
            for try await ok in group where ok { count += 1 }
            return count
        }
        #expect(admitted == 2)
        // A fork of 2 does not fit until places are given back; lapsed places are forgotten.
        #expect(!(try await nodes.admit(accountID: account.id, limit: 3, count: 2, reservation: "adm_\(suffix)_f", node: "a", expiresAt: 50_000, now: 100)))
        for attempt in 0..<12 { try await nodes.release(reservation: "adm_\(suffix)_\(attempt)") }
        #expect(try await nodes.admit(accountID: account.id, limit: 3, count: 2, reservation: "adm_\(suffix)_f", node: "a", expiresAt: 200, now: 100))
        try await nodes.releaseExpired(now: 300)
        #expect(try await nodes.admit(accountID: account.id, limit: 3, count: 2, reservation: "adm_\(suffix)_g", node: "a", expiresAt: 500, now: 300))
        try await nodes.release(reservation: "adm_\(suffix)_g")

        // Node b's lease ran out at 1,000: with a grace of 500 its sandbox ends at 1,600, once.
        #expect(try await sandboxes.endSandboxesOfDownNodes(expiredBefore: 900, at: 950).filter { $0.id == running.id }.isEmpty)
        let lost = try await sandboxes.endSandboxesOfDownNodes(expiredBefore: 1_100, at: 1_600).filter { $0.id == running.id }
        #expect(lost.count == 1)
        #expect(lost.first?.endReason == .lost && lost.first?.state == .ended && lost.first?.endedAt == 1_600)
        #expect(try await sandboxes.endSandboxesOfDownNodes(expiredBefore: 1_100, at: 1_700).filter { $0.id == running.id }.isEmpty)
        #expect(try await nodes.liveSandboxes(node: "b-\(suffix)") == 0)
        #expect(try await sandboxes.running(node: "b-\(suffix)").filter { $0.accountID == account.id }.isEmpty)
    }
}
