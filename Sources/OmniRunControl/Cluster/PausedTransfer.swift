import Foundation
import OmniRunCore
import OmniRunError

/// What a draining node says about a paused sandbox it hands to another node
/// (`GET /internal/sandboxes/{id}/moving`): the machine the saved state belongs to (a
/// resume needs the same vCPUs and memory) and the two files with their sizes and SHA-256.
package struct PausedTransfer: Codable, Sendable, Equatable {
    package var sandboxID: String
    package var template: String
    package var vcpus: Int
    package var memoryMB: Int
    package var diskMB: Int?
    package var imageKey: String
    package var accelerator: String
    package var hasNIC: Bool?
    package var pausedAtMillis: Int64
    package var stateBytes: Int64
    package var stateSHA256: String
    package var diskBytes: Int64
    package var diskSHA256: String

    /// The largest saved state or disk a node takes from another.
    package static let maxBytes: Int64 = 1 << 40

    package init(sandboxID: String, paused: PausedMachine, template: String, state: (Int64, String), disk: (Int64, String)) {
        self.sandboxID = sandboxID
        self.template = template
        vcpus = paused.image.vcpus
        memoryMB = paused.image.memoryMB
        diskMB = paused.image.diskMB
        imageKey = paused.image.key
        accelerator = paused.accelerator
        hasNIC = paused.hasNIC
        pausedAtMillis = paused.pausedAtMillis
        (stateBytes, stateSHA256) = state
        (diskBytes, diskSHA256) = disk
    }

    /// Checked before anything is fetched: the sandbox asked for, sizes and digests in bounds.
    package func validated(sandboxID requested: String, template expected: String) throws -> PausedTransfer {
        func refuse(_ what: String) -> OmniRunError {
            OmniRunError(.unavailable, "the node handing over sandbox \(requested) described it wrongly: \(what)")
        }
        guard sandboxID == requested, template == expected else { throw refuse("another sandbox or template") }
        guard (1...64).contains(vcpus), (64...1_048_576).contains(memoryMB), (diskMB ?? 1) > 0, (diskMB ?? 1) <= 1 << 22 else {
            throw refuse("resources")
        }
        guard imageKey.count <= 64, imageKey.allSatisfy(\.isHexDigit), accelerator.count <= 16, accelerator.allSatisfy(\.isLetter) else {
            throw refuse("image key or accelerator")
        }
        for (bytes, digest) in [(stateBytes, stateSHA256), (diskBytes, diskSHA256)] {
            guard (1...Self.maxBytes).contains(bytes), digest.count == 64, digest.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw refuse("file sizes or digests")
            }
        }
        return self
    }

    /// The paused machine as this node resumes it: its own image files, the saved machine's size.
    package func paused(image: MachineImage, directory: String) -> PausedMachine {
        var image = image
        image.vcpus = vcpus
        image.memoryMB = memoryMB
        image.diskMB = diskMB
        return PausedMachine(
            image: image, directory: directory, stateFile: directory + "/paused.state", diskFile: directory + "/disk.qcow2",
            accelerator: accelerator, pausedAtMillis: pausedAtMillis, hasNIC: hasNIC)
    }
}

/// How an arrival stands on the node taking a sandbox in (`GET /internal/sandboxes/{id}/adopt`).
package struct ArrivalStatus: Codable, Sendable, Equatable {
    /// `moving`, `done` or `failed`.
    package var state: String
    package var message: String?

    package init(state: String, message: String? = nil) {
        self.state = state
        self.message = message
    }
}
