import Foundation
import OmniRunCore
import OmniRunError

/// The guest images built by `scripts/build-image.sh`: one manifest per template
/// under `<cache>/images/<template>.json`.
public struct ImageCatalog: Sendable {
    public let cacheDirectory: String

    public init(cacheDirectory: String) {
        self.cacheDirectory = cacheDirectory
    }

    /// `$OMNIRUN_CACHE_DIR`, else `$HOME/.cache/omnirun`.
    public static var defaultCacheDirectory: String {
        let env = Foundation.ProcessInfo.processInfo.environment
        if let dir = env["OMNIRUN_CACHE_DIR"], !dir.isEmpty { return dir }
        return (env["HOME"] ?? "/root") + "/.cache/omnirun"
    }

    /// Names users may ask for, mapped to the image that serves them.
    public static let aliases: [String: String] = [
        "python-3.11": "playground", "python": "playground", "base": "playground",
    ]

    public func resolve(_ name: String) -> String {
        Self.aliases[name] ?? name
    }

    public func image(for template: String) throws -> MachineImage {
        let resolved = resolve(template)
        guard resolved.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }), !resolved.isEmpty
        else {
            throw OmniRunError(.invalidArgument, "invalid template name '\(template)'")
        }
        let path = cacheDirectory + "/images/\(resolved).json"
        guard let data = FileManager.default.contents(atPath: path) else {
            let available = templates()
            throw OmniRunError(
                .notFound,
                "template '\(template)' is not built (available: \(available.isEmpty ? "none; run `make image`" : available.joined(separator: ", ")))"
            )
        }
        struct Manifest: Decodable {
            var template: String
            var kernel: String
            var initrd: String?
            var rootfs: String
            var vcpus: Int?
            var memoryMB: Int?
            var diskMB: Int?
            var key: String
        }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch {
            throw OmniRunError(.internalError, "image manifest \(path) is malformed: \(error)")
        }
        guard let initrd = manifest.initrd else {
            throw OmniRunError(.notFound, "template '\(template)' has no agent initramfs yet; run `make image`")
        }
        for file in [manifest.kernel, initrd, manifest.rootfs] where !FileManager.default.fileExists(atPath: file) {
            throw OmniRunError(.notFound, "template '\(template)' is missing \(file); run `make image`")
        }
        return MachineImage(
            template: manifest.template, kernel: manifest.kernel, initrd: initrd, rootfs: manifest.rootfs,
            vcpus: manifest.vcpus ?? 1, memoryMB: manifest.memoryMB ?? 256, diskMB: manifest.diskMB, key: manifest.key)
    }

    /// Templates with a manifest.
    public func templates() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: cacheDirectory + "/images")) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }
}
