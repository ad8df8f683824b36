import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import OmniRunError
import OmniRunStore
import SandboxRuntime

/// Custom templates on every node: a template is built on one node; a create placed on
/// another node that does not hold its current version fetches it first from a node that
/// does (signed node-to-node calls; the image checked by its SHA-256), publishes it in its
/// own catalog and takes its snapshot as for any first create. Which version a node holds is
/// the build recorded beside its manifest (`<name>.build`).
package actor TemplateReplication {
    package nonisolated let manifestDirectory: String
    package nonisolated let imageDirectory: String
    private let catalog: ImageCatalog
    private let nodes: NodeRepository
    private let client: NodeClient
    private let logger: Logger
    private var fetching: [String: Task<Void, any Error>] = [:]

    package init(
        manifestDirectory: String, imageDirectory: String, catalog: ImageCatalog, nodes: NodeRepository, client: NodeClient,
        logger: Logger
    ) {
        self.manifestDirectory = manifestDirectory
        self.imageDirectory = imageDirectory
        self.catalog = catalog
        self.nodes = nodes
        self.client = client
        self.logger = logger
    }

    /// The build of the version this node holds (nil: none recorded).
    package nonisolated func localBuild(_ name: String) -> String? {
        guard ImageCatalog.isValidName(name),
            let text = try? String(contentsOfFile: manifestDirectory + "/\(name).build", encoding: .utf8)
        else { return nil }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Records which build the published manifest of `name` in `directory` is.
    package static func recordBuild(_ name: String, build: String, in directory: String) {
        guard ImageCatalog.isValidName(name) else { return }
        try? (build + "\n").write(toFile: directory + "/\(name).build", atomically: true, encoding: .utf8)
    }

    /// Makes sure this node holds the published version of a custom template before a
    /// sandbox of it is created here. A node that built it, or already fetched its latest
    /// build, does nothing.
    package func ensure(_ record: TemplateRecord) async throws {
        guard record.published else { return }
        let held = localBuild(record.name)
        if catalog.isBuilt(record.name), held == record.latestBuild || held == nil { return }
        if let running = fetching[record.name] { return try await running.value }
        let task = Task { try await self.fetch(record, holding: catalog.isBuilt(record.name) ? held : nil) }
        fetching[record.name] = task
        defer { fetching[record.name] = nil }
        try await task.value
    }

    /// Asks the nodes that hold the template (up, with a snapshot of it) for it, the one with
    /// the template's latest build first; keeps this node's version when that is what they have.
    private func fetch(_ record: TemplateRecord, holding: String?) async throws {
        let now = nowMillis()
        let holders = try await nodes.list().filter {
            $0.id != client.auth.node && $0.isUp(at: now) && $0.templates.contains(record.name) && $0.advertiseURL != nil
        }
        var failures: [String] = []
        var described: [(NodeRecord, TemplateTransfer)] = []
        for node in holders {
            do {
                described.append((node, try await describe(record.name, on: node)))
            } catch {
                failures.append("\(node.id): \(error)")
            }
        }
        described.sort { ($0.1.build == record.latestBuild ? 0 : 1) < ($1.1.build == record.latestBuild ? 0 : 1) }
        guard let (node, transfer) = described.first else {
            if holding != nil { return }
            throw OmniRunError(
                .unavailable,
                "template \(record.name) was built on another node and no node holding it answers"
                    + (failures.isEmpty ? "" : " (\(failures.joined(separator: "; ")))"))
        }
        if let holding, transfer.build == holding { return }
        let started = ContinuousClock.now
        var rootfs: String?
        if transfer.rootfsOf == nil, let bytes = transfer.rootfsBytes, let digest = transfer.rootfsSHA256 {
            let folder = imageDirectory + "/\(record.name)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let path = folder + "/\(digest.prefix(16)).ext4"
            if (try? TemplateTransfer.digest(of: path)) != digest {
                try await download(record.name, from: node, into: ImageReceiver(path: path, expectedBytes: bytes, expectedSHA256: digest))
            }
            rootfs = path
        }
        let template = try transfer.image(catalog: catalog, rootfs: rootfs)
        try ImageCatalog.publish(template, into: manifestDirectory)
        Self.recordBuild(record.name, build: transfer.build ?? record.latestBuild, in: manifestDirectory)
        logger.info(
            "template fetched from another node",
            metadata: [
                "template": "\(record.name)", "node": "\(node.id)", "build": "\(transfer.build ?? "")",
                "bytes": "\(transfer.rootfsBytes ?? 0)", "took": "\(ContinuousClock.now - started)",
            ])
    }

    private func describe(_ name: String, on node: NodeRecord) async throws -> TemplateTransfer {
        let response = try await client.call("GET", "/internal/templates/\(name)", on: node)
        guard response.status == .ok else {
            throw OmniRunError(.unavailable, "node \(node.id) answered \(response.status.code) for template \(name)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        let transfer: TemplateTransfer
        do {
            transfer = try JSONDecoder().decode(TemplateTransfer.self, from: Data(buffer: body))
        } catch {
            throw OmniRunError(.unavailable, "node \(node.id) described template \(name) in a form this node does not read: \(error)")
        }
        return try transfer.validated(requested: name)
    }

    private func download(_ name: String, from node: NodeRecord, into receiver: ImageReceiver) async throws {
        // An image of many GiB takes a while on a slow link: no overall deadline, but the
        // client's read timeout ends a transfer that stalls.
        let response = try await client.call("GET", "/internal/templates/\(name)/rootfs", on: node, deadline: .hours(24))
        guard response.status == .ok else {
            throw OmniRunError(.unavailable, "node \(node.id) answered \(response.status.code) for the image of template \(name)")
        }
        let logger = self.logger
        try await receiver.receive(response.body) { bytes in
            logger.info("fetching a template's image", metadata: ["template": "\(name)", "node": "\(node.id)", "bytes": "\(bytes)"])
        }
    }
}
