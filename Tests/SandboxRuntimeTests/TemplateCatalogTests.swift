import Foundation
import OmniRunError
import Testing

@testable import SandboxRuntime

@Suite("Template definitions and manifests")
struct TemplateCatalogTests {
    static var repositoryTemplates: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .path + "/images/templates"
    }

    @Test func theBuiltInCatalogueDeclaresItsResources() throws {
        let builtIns = BuiltInTemplates(directory: Self.repositoryTemplates)
        #expect(
            builtIns.names == [
                "claude-agent", "claude-code", "codex", "desktop", "javascript", "node-20", "node-22", "node-24", "php", "playground",
                "rust", "sql", "typescript", "zig",
            ])
        for definition in builtIns.definitions() {
            #expect(definition.vcpus >= 1 && definition.memoryMB >= 256 && definition.diskMB >= 1024, "\(definition.name)")
            #expect(definition.description?.isEmpty == false, "\(definition.name)")
            #expect(definition.name == "playground" || definition.parent != nil, "\(definition.name)")
        }
        #expect(builtIns.definition("claude-agent")?.memoryMB == 8192)
        // The coding agents' templates inherit claude-agent's size.
        for agent in ["claude-code", "codex"] {
            #expect(builtIns.definition(agent)?.parent == "claude-agent")
            #expect(builtIns.definition(agent)?.memoryMB == 8192 && builtIns.definition(agent)?.vcpus == 2)
        }
        #expect(builtIns.definition("typescript")?.parent == "javascript")
        #expect(builtIns.definition("javascript")?.parent == "node-22")
        #expect(builtIns.definition("claude-agent")?.parent == "node-22")
        #expect(["node-20", "node-22", "node-24"].allSatisfy { builtIns.definition($0)?.parent == "playground" })
        #expect(builtIns.definition("nope") == nil)
        #expect(builtIns.definition("../playground") == nil)
    }

    @Test func valuesAreInheritedThroughFROM() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpl-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (name, env) in [
            ("base", "VCPUS=2\nMEMORY_MB=512\nDISK_MB=2048\nDESCRIPTION=\"the base\"\n"),
            ("child", "# a comment\nFROM=base\nMEMORY_MB='1024'\nMEMORY_MB=768\n"),
        ] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(name)", withIntermediateDirectories: true)
            try env.write(toFile: "\(dir)/\(name)/template.env", atomically: true, encoding: .utf8)
        }
        let child = try #require(BuiltInTemplates(directory: dir).definition("child"))
        #expect(child.vcpus == 2)
        #expect(child.memoryMB == 768)
        #expect(child.diskMB == 2048)
        #expect(child.description == "the base")
        #expect(child.parent == "base")
    }

    @Test func manifestsCarryTheTemplateSetup() throws {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("cat-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: cache) }
        try FileManager.default.createDirectory(atPath: cache + "/images", withIntermediateDirectories: true)
        for file in ["vmlinuz", "initrd", "root.ext4"] {
            _ = FileManager.default.createFile(atPath: "\(cache)/\(file)", contents: Data())
        }
        let manifest = """
            {"template":"sql","kernel":"\(cache)/vmlinuz","initrd":"\(cache)/initrd","rootfs":"\(cache)/root.ext4","vcpus":1,"memoryMB":1024,"diskMB":2048,"key":"abc","description":"PostgreSQL","warmUp":null,"start":"/usr/local/lib/omnirun/start-postgres","ready":"pg_isready","readyTimeout":90}
            """
        try manifest.write(toFile: cache + "/images/sql.json", atomically: true, encoding: .utf8)
        let catalog = ImageCatalog(cacheDirectory: cache)
        let sql = try catalog.template(named: "sql")
        #expect(sql.image.memoryMB == 1024)
        #expect(sql.setup.start == "/usr/local/lib/omnirun/start-postgres")
        #expect(sql.setup.ready == "pg_isready")
        #expect(sql.setup.readyTimeout == .seconds(90))
        #expect(sql.setup.warmUp.isEmpty)
        #expect(sql.description == "PostgreSQL")
        #expect(catalog.isBuilt("sql") && !catalog.isBuilt("rust"))
        #expect(throws: OmniRunError.self) { try catalog.template(named: "rust") }
        #expect(throws: OmniRunError.self) { try catalog.template(named: "../images/sql") }
    }

    @Test func onlyAServiceChangesTheSnapshotKey() {
        // Warm-up commands fill caches: a snapshot without a service keeps its key.
        #expect(TemplateSetup(warmUp: ["python3 -c pass"]).snapshotKeyPart == nil)
        #expect(TemplateSetup(start: "postgres").snapshotKeyPart != TemplateSetup(start: "redis").snapshotKeyPart)
        #expect(TemplateSetup(ready: "true").snapshotKeyPart != nil)
    }

    @Test func templateNames() {
        for name in ["rust", "claude-agent", "my-template.v2", "a", "x_1"] { #expect(ImageCatalog.isValidName(name), "\(name)") }
        for name in ["", "Rust", "-x", ".x", "a/b", "a b", String(repeating: "a", count: 65), "ü"] {
            #expect(!ImageCatalog.isValidName(name), "\(name)")
        }
    }
}
