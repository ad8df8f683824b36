import Crypto
import Foundation
import OmniRunCore
import OmniRunError
import SandboxRuntime

/// What a node that holds a custom template tells another about it
/// (`GET /internal/templates/{name}`): its version (the build), its settings, and which of
/// its files are a built-in template's (every node builds those itself) — only the template's
/// own disk image travels, checked by its SHA-256.
package struct TemplateTransfer: Codable, Sendable, Equatable {
    package var name: String
    /// The build that made this version (nil: built before nodes recorded it).
    package var build: String?
    package var key: String
    /// The built-in template whose kernel and initramfs it boots.
    package var kernelOf: String
    /// A built-in template whose disk it uses unchanged, or nil: its own image follows.
    package var rootfsOf: String?
    package var rootfsBytes: Int64?
    package var rootfsSHA256: String?
    package var vcpus: Int
    package var memoryMB: Int
    package var diskMB: Int?
    package var description: String?
    package var warmUp: [String]
    package var start: String?
    package var ready: String?
    package var readyTimeoutSeconds: Int64
    package var startUser: String
    package var setupEnv: [String: String]
    package var cwd: String?
    package var env: [String: String]
    package var user: String?
    package var workdir: String?
    package var ports: [Int]

    /// The largest image a node takes from another (a template's disk is at most a few tens of GiB).
    package static let maxImageBytes: Int64 = 256 << 30

    /// Checks what another node sent before anything is written or run: names, sizes,
    /// digests, and the amounts of everything that is a list.
    package func validated(requested: String) throws -> TemplateTransfer {
        func refuse(_ what: String) -> OmniRunError {
            OmniRunError(.unavailable, "the node holding template \(requested) described it wrongly: \(what)")
        }
        guard name == requested, ImageCatalog.isValidName(name) else { throw refuse("another name") }
        if let build { guard build.count <= 64, build.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else { throw refuse("build id") } }
        guard key.count <= 64, key.allSatisfy(\.isHexDigit) else { throw refuse("key") }
        guard ImageCatalog.isValidName(kernelOf), rootfsOf.map(ImageCatalog.isValidName) ?? true else { throw refuse("base template") }
        if rootfsOf == nil {
            guard let bytes = rootfsBytes, (1...Self.maxImageBytes).contains(bytes) else { throw refuse("image size") }
            guard let digest = rootfsSHA256, digest.count == 64, digest.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw refuse("image digest")
            }
        }
        guard (1...64).contains(vcpus), (64...1_048_576).contains(memoryMB), (diskMB ?? 1) > 0, (diskMB ?? 1) <= 1 << 22 else {
            throw refuse("resources")
        }
        guard (0...86_400).contains(readyTimeoutSeconds), ports.count <= 64, ports.allSatisfy({ (1...65535).contains($0) }) else {
            throw refuse("ready timeout or ports")
        }
        let texts = [description, start, ready, cwd, user, workdir, startUser].compactMap { $0 } + warmUp
        guard texts.count <= 80, texts.allSatisfy({ $0.utf8.count <= 65_536 }), env.count <= 1000, setupEnv.count <= 1000,
            (env.merging(setupEnv) { a, _ in a }).allSatisfy({ $0.key.utf8.count <= 256 && $0.value.utf8.count <= 65_536 })
        else { throw refuse("settings too large") }
        return self
    }
}

extension TemplateTransfer {
    /// Describes a template this node holds, for another node.
    package static func describe(_ template: TemplateImage, build: String?, catalog: ImageCatalog) throws -> TemplateTransfer {
        let image = template.image
        var kernelOf: String?
        var rootfsOf: String?
        for name in catalog.builtInTemplates() {
            guard let builtIn = try? catalog.image(for: name) else { continue }
            if kernelOf == nil, builtIn.kernel == image.kernel, builtIn.initrd == image.initrd { kernelOf = name }
            if rootfsOf == nil, builtIn.rootfs == image.rootfs { rootfsOf = name }
        }
        guard let kernelOf else {
            throw OmniRunError(.unavailable, "template \(image.template) boots a kernel no built-in template of this node has")
        }
        var transfer = TemplateTransfer(
            name: image.template, build: build, key: image.key, kernelOf: kernelOf, rootfsOf: rootfsOf, vcpus: image.vcpus,
            memoryMB: image.memoryMB, diskMB: image.diskMB, description: template.description, warmUp: template.setup.warmUp,
            start: template.setup.start, ready: template.setup.ready,
            readyTimeoutSeconds: template.setup.readyTimeout.components.seconds, startUser: template.setup.user,
            setupEnv: template.setup.env, cwd: template.setup.cwd, env: template.defaults.env, user: template.defaults.user,
            workdir: template.defaults.workdir, ports: template.defaults.ports)
        if rootfsOf == nil {
            transfer.rootfsBytes = ImageReceiver.size(ofFile: image.rootfs)
            transfer.rootfsSHA256 = try digest(of: image.rootfs)
        }
        return transfer
    }

    /// The template as this node runs it: the built-ins' files are this node's own.
    package func image(catalog: ImageCatalog, rootfs: String?) throws -> TemplateImage {
        let base = try catalog.image(for: kernelOf)
        guard let disk = try rootfs ?? rootfsOf.map({ try catalog.image(for: $0).rootfs }) else {
            throw OmniRunError(.internalError, "template \(name) has no disk image")
        }
        let image = MachineImage(
            template: name, kernel: base.kernel, initrd: base.initrd, rootfs: disk, vcpus: vcpus, memoryMB: memoryMB, diskMB: diskMB,
            key: key)
        let setup = TemplateSetup(
            warmUp: warmUp, start: start, ready: ready, readyTimeout: .seconds(readyTimeoutSeconds), user: startUser, env: setupEnv,
            cwd: cwd)
        return TemplateImage(
            image: image, setup: setup, description: description,
            defaults: TemplateDefaults(env: env, user: user, workdir: workdir, ports: ports))
    }

    /// The SHA-256 of a template's image, computed once and kept beside it (the image never
    /// changes: a new version is a new file).
    package static func digest(of path: String) throws -> String {
        let cached = path + ".sha256"
        if let text = try? String(contentsOfFile: cached, encoding: .utf8), text.count == 64 { return text }
        let text = try ImageReceiver.sha256(ofFile: path)
        try? text.write(toFile: cached, atomically: true, encoding: .utf8)
        return text
    }
}
