import ArgumentParser
import Foundation
import Logging
import OmniRunControl
import OmniRunStore
import SandboxRuntime

extension OmniRun {
    /// The nodes of a cluster sharing one database: list them, drain one.
    struct Node: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the nodes sharing this store, drain one.", subcommands: [List.self, Drain.self, Undrain.self])

        /// Where the store is: as for `serve`.
        struct StoreOptions: ParsableArguments {
            @Option(help: "Data directory (for the default SQLite store).")
            var dataDir: String?

            @Option(help: "Store URL, as for serve ($OMNIRUN_DATABASE).")
            var database: String?

            func open() async throws -> any SQLDatabase {
                let env = Foundation.ProcessInfo.processInfo.environment
                var configuration = ServerConfiguration(
                    dataDirectory: dataDir ?? SandboxRuntime.Configuration.defaultDataDirectory(environment: env))
                configuration.databaseURL = database ?? env["OMNIRUN_DATABASE"]
                return try await OmniRunStore.Store.open(url: configuration.resolvedDatabaseURL, logger: Logger(label: "omnirun.node"))
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Nodes, their regions, leases and load.")

            @OptionGroup var store: StoreOptions

            @Flag(help: "JSON instead of a table.")
            var json = false

            func run() async throws {
                let database = try await store.open()
                let nodes = try await NodeRepository(database: database).list()
                await database.close()
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                if json {
                    let items: [[String: Any]] = nodes.map { node in
                        [
                            "id": node.id, "region": node.region, "advertiseURL": node.advertiseURL ?? NSNull(),
                            "state": Self.state(node, now: now), "leaseExpiresAt": node.leaseExpiresAt, "draining": node.draining,
                            "vcpus": node.vcpus, "memoryMB": node.memoryMB, "diskMB": node.diskMB, "running": node.running,
                            "templates": node.templates, "load": node.load,
                        ]
                    }
                    let data = try JSONSerialization.data(withJSONObject: items, options: [.prettyPrinted, .sortedKeys])
                    say(String(decoding: data, as: UTF8.self))
                    return
                }
                say("NODE                 REGION       STATE      LEASE     RUNNING  LOAD   VCPUS  MEMORY     URL")
                for node in nodes {
                    let lease = (node.leaseExpiresAt - now) / 1000
                    let columns: [(String, Int)] = [
                        (node.id, 20), (node.region, 12), (Self.state(node, now: now), 10),
                        (lease >= 0 ? "\(lease)s" : "\(-lease)s ago", 9), ("\(node.running)", 8), (String(format: "%.2f", node.load), 6),
                        ("\(node.vcpus)", 6), ("\(node.memoryMB) MiB", 10), (node.advertiseURL ?? "-", 0),
                    ]
                    say(columns.map { $0.1 > 0 ? $0.0.padding(toLength: max($0.1, $0.0.count), withPad: " ", startingAt: 0) : $0.0 }.joined(separator: " "))
                }
            }

            static func state(_ node: NodeRecord, now: Int64) -> String {
                node.isUp(at: now) ? (node.draining ? "draining" : "up") : "down"
            }
        }

        struct Drain: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Stop new sandboxes on a node and wait until its sandboxes have ended.")

            @OptionGroup var store: StoreOptions

            @Argument(help: "The node's id.")
            var id: String

            @Flag(help: "Only mark the node; do not wait.")
            var noWait = false

            @Option(help: "Give up waiting after this many seconds (the node stays draining).")
            var timeout: Int = 3600

            func run() async throws {
                let database = try await store.open()
                let nodes = NodeRepository(database: database)
                do {
                    guard try await nodes.setDraining(id: id, true) else { throw ValidationError("no node '\(id)'") }
                    say("[node] \(id) takes no new sandboxes")
                    if noWait {
                        await database.close()
                        return
                    }
                    let deadline = Date().addingTimeInterval(TimeInterval(max(timeout, 0)))
                    var last = -1
                    while true {
                        let live = try await nodes.liveSandboxes(node: id)
                        if live == 0 { break }
                        if live != last { say("[node] \(id): \(live) sandbox\(live == 1 ? "" : "es") still running or paused") }
                        last = live
                        guard Date() < deadline else { throw ValidationError("\(id) still has \(live) sandboxes after \(timeout) s") }
                        try await Task.sleep(for: .seconds(1))
                    }
                    say("[node] \(id) is drained: no sandboxes left")
                    await database.close()
                } catch {
                    await database.close()
                    throw error
                }
            }
        }

        struct Undrain: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Let a drained node take new sandboxes again.")

            @OptionGroup var store: StoreOptions

            @Argument(help: "The node's id.")
            var id: String

            func run() async throws {
                let database = try await store.open()
                let found = try await NodeRepository(database: database).setDraining(id: id, false)
                await database.close()
                guard found else { throw ValidationError("no node '\(id)'") }
                say("[node] \(id) takes new sandboxes again")
            }
        }
    }
}
