import Foundation
import OmniRunError

/// Files out of a built-in template's root file system (a raw ext4 image built by
/// `scripts/build-image.sh`), for `COPY --from=<template>`. They are read with `debugfs`,
/// without mounting the image, into a scratch folder and packed as a tar that the build
/// machine unpacks like a build context. A source that is a symbolic link is followed
/// (within the image), as Docker does; links inside a copied folder stay links.
enum ImageFiles {
    static let debugfs = "/usr/sbin/debugfs"

    /// Packs `sources` (absolute, plain paths) of `image` into `tarPath`, each as
    /// `<n>/<name>`; returns those names (the sources of the copy in the build machine).
    static func archive(image: String, template: String, sources: [String], into tarPath: String, scratch: String) async throws -> [String] {
        let fm = FileManager.default
        try fm.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: scratch) }
        var names: [String] = []
        for (index, source) in sources.enumerated() {
            guard source != "/" else {
                throw OmniRunError(.invalidArgument, "COPY --from=\(template) /: copy folders of the image, not all of it")
            }
            let name = (source as NSString).lastPathComponent
            var path = source
            var hops = 0
            while true {
                let probe = scratch + "/probe-\(index)-\(hops)"
                try fm.createDirectory(atPath: probe, withIntermediateDirectories: true)
                let result = try await HostTool.run([debugfs, "-R", "rdump \(path) \(probe)", image])
                let dumped = probe + "/" + (path as NSString).lastPathComponent
                guard (try? fm.attributesOfItem(atPath: dumped)) != nil else {
                    let reason = result.stderr.split(separator: "\n").last(where: { !$0.hasPrefix("debugfs ") }).map(String.init)
                    throw OmniRunError(
                        .invalidArgument,
                        "COPY --from=\(template): \(source) is not in the template's image\(reason.map { " (\($0))" } ?? "")")
                }
                if let target = try? fm.destinationOfSymbolicLink(atPath: dumped) {
                    hops += 1
                    guard hops <= 16 else {
                        throw OmniRunError(.invalidArgument, "COPY --from=\(template): \(source): too many levels of symbolic links")
                    }
                    let joined = target.hasPrefix("/") ? target : (path as NSString).deletingLastPathComponent + "/" + target
                    path = normalize(joined)
                    try? fm.removeItem(atPath: probe)
                    guard path != "/" else {
                        throw OmniRunError(.invalidArgument, "COPY --from=\(template): \(source) links to the root of the image")
                    }
                    continue
                }
                let folder = scratch + "/out/\(index)"
                try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
                try fm.moveItem(atPath: dumped, toPath: folder + "/" + name)
                try? fm.removeItem(atPath: probe)
                break
            }
            names.append("\(index)/\(name)")
        }
        let packed = try await HostTool.run(["/bin/tar", "-c", "-f", tarPath, "--numeric-owner", "-C", scratch + "/out", "."])
        guard packed.status == 0 else {
            throw OmniRunError(.internalError, "packing the files of \(template) failed: \(packed.stderr.suffix(400))")
        }
        return names
    }

    /// An absolute path with `.` and `..` resolved (never above the root).
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for component in path.split(separator: "/") {
            switch component {
            case ".": continue
            case "..": _ = parts.popLast()
            default: parts.append(component)
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}

/// Runs a host tool (`debugfs`, `tar`, `qemu-img`) on a thread of its own and collects
/// its exit status and output (bounded).
enum HostTool {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// What the reader of one pipe collected (read once the reader is done).
    private final class Collected: @unchecked Sendable {
        var data = Data()
    }

    static func run(_ argv: [String]) async throws -> Result {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
            DispatchQueue.global().async {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: argv[0])
                process.arguments = Array(argv.dropFirst())
                let output = Pipe()
                let errors = Pipe()
                process.standardOutput = output
                process.standardError = errors
                process.standardInput = FileHandle.nullDevice
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: OmniRunError(.unavailable, "cannot run \(argv[0]): \(error)"))
                    return
                }
                // Both pipes are drained at once so that neither fills up and blocks the tool.
                let group = DispatchGroup()
                let stderr = Collected()
                group.enter()
                DispatchQueue.global().async {
                    stderr.data = errors.fileHandleForReading.readDataToEndOfFile()
                    group.leave()
                }
                let out = output.fileHandleForReading.readDataToEndOfFile()
                group.wait()
                let err = stderr.data
                process.waitUntilExit()
                continuation.resume(
                    returning: Result(
                        status: process.terminationStatus, stdout: String(decoding: out.suffix(1 << 20), as: UTF8.self),
                        stderr: String(decoding: err.suffix(64 << 10), as: UTF8.self)))
            }
        }
    }
}
