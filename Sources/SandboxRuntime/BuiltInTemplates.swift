import Foundation

/// A built-in template as defined in the repository (`images/templates/<name>/template.env`),
/// whether or not its image has been built on this machine.
public struct TemplateDefinition: Sendable, Equatable {
    public var name: String
    public var description: String?
    public var vcpus: Int
    public var memoryMB: Int
    public var diskMB: Int
    /// The template it starts from (`FROM=`).
    public var parent: String?
}

/// The built-in templates: the folders of `images/templates`, read the way
/// `scripts/lib.sh` reads them (simple `KEY=value` lines, unset values taken from the
/// `FROM=` parent).
public struct BuiltInTemplates: Sendable {
    /// The `images/templates` folder, if one was found.
    public let directory: String?

    public init(directory: String?) {
        self.directory = directory
    }

    /// `$OMNIRUN_TEMPLATES_DIR`, else `images/templates` of the checkout the running
    /// executable was built in (`<repo>/.build/<config>/omnirun`), else of the current folder.
    public static func locate(environment env: [String: String]) -> BuiltInTemplates {
        let fm = FileManager.default
        if let dir = env["OMNIRUN_TEMPLATES_DIR"], !dir.isEmpty { return BuiltInTemplates(directory: dir) }
        var candidates: [String] = []
        if let executable = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            var url = URL(fileURLWithPath: executable).deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(url.path + "/images/templates")
                url = url.deletingLastPathComponent()
            }
        }
        candidates.append(fm.currentDirectoryPath + "/images/templates")
        let found = candidates.first { fm.fileExists(atPath: $0 + "/playground/template.env") }
        return BuiltInTemplates(directory: found)
    }

    public var names: [String] {
        guard let directory else { return [] }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.filter { FileManager.default.fileExists(atPath: "\(directory)/\($0)/template.env") }.sorted()
    }

    public func contains(_ name: String) -> Bool {
        guard let directory, ImageCatalog.isValidName(name) else { return false }
        return FileManager.default.fileExists(atPath: "\(directory)/\(name)/template.env")
    }

    public func definitions() -> [TemplateDefinition] {
        names.compactMap { definition($0) }
    }

    public func definition(_ name: String) -> TemplateDefinition? {
        guard contains(name) else { return nil }
        let own = values(name)
        func inherited(_ key: String) -> String? {
            var current: String? = name
            var depth = 0
            while let template = current, depth < 16 {
                let values = template == name ? own : self.values(template)
                if let value = values[key], !value.isEmpty { return value }
                current = values["FROM"].flatMap { $0.isEmpty ? nil : $0 }
                depth += 1
            }
            return nil
        }
        return TemplateDefinition(
            name: name, description: inherited("DESCRIPTION"), vcpus: inherited("VCPUS").flatMap { Int($0) } ?? 1,
            memoryMB: inherited("MEMORY_MB").flatMap { Int($0) } ?? 256,
            diskMB: inherited("DISK_MB").flatMap { Int($0) } ?? 0, parent: own["FROM"].flatMap { $0.isEmpty ? nil : $0 })
    }

    /// `KEY=value` lines of a template.env; one layer of matching quotes is removed, the
    /// last assignment wins, nothing is evaluated (as `omni_env_get`).
    private func values(_ name: String) -> [String: String] {
        guard let directory, ImageCatalog.isValidName(name),
            let text = try? String(contentsOfFile: "\(directory)/\(name)/template.env", encoding: .utf8)
        else { return [:] }
        return Self.parseEnv(text)
    }

    static func parseEnv(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq])
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { continue }
            var value = Substring(line[line.index(after: eq)...])
            if let first = value.first, first == "\"" || first == "'" { value = value.dropFirst() }
            if let last = value.last, last == "\"" || last == "'" { value = value.dropLast() }
            values[key] = String(value)
        }
        return values
    }
}
