import Foundation
import SandboxRuntime
import Testing
import TestSupport

@Suite("Templates over the REST API", .timeLimit(.minutes(10)))
struct TemplateAPITests {
    static let builtIns = [
        "claude-agent", "javascript", "node-20", "node-22", "node-24", "php", "playground", "rust", "sql", "typescript", "zig",
    ]

    @Test func theCatalogueListsEveryBuiltInWithItsResourcesAndState() async throws {
        let (server, client) = try await SharedServer.client("templates")
        let reply = try await client.get("/templates")
        #expect(reply.status == 200)
        let items = reply.array
        let byName = Dictionary(items.compactMap { item in (item["templateID"] as? String).map { ($0, item) } }) { a, _ in a }
        #expect(Set(Self.builtIns).isSubset(of: Set(byName.keys)), "\(byName.keys.sorted())")
        let definitions = BuiltInTemplates(directory: TestServer.packageRoot + "/images/templates")
        let catalog = ImageCatalog(cacheDirectory: ImageCatalog.defaultCacheDirectory(environment: ProcessInfo.processInfo.environment))
        for name in Self.builtIns {
            let item = try #require(byName[name])
            let definition = try #require(definitions.definition(name))
            #expect(item["builtIn"] as? Bool == true)
            #expect(item["public"] as? Bool == true)
            #expect((item["description"] as? String)?.isEmpty == false)
            #expect(item["cpuCount"] as? Int == definition.vcpus, "\(name)")
            #expect(item["memoryMB"] as? Int == definition.memoryMB, "\(name)")
            #expect(item["diskMB"] as? Int == definition.diskMB, "\(name)")
            // Built or not, as the cache says; an unbuilt one says how to build it.
            let built = catalog.isBuilt(name)
            #expect(item["status"] as? String == (built ? "ready" : "not_built"), "\(name)")
            if !built { #expect(item["buildHint"] as? String == "make image TEMPLATE=\(name)") }
            #expect(["ready", "missing", "building"].contains(item["snapshot"] as? String ?? ""))
        }
        #expect(byName["claude-agent"]?["memoryMB"] as? Int == 8192)
        // make test builds these, and the server took playground's snapshot before it started.
        for name in ["playground", "javascript", "php"] { #expect(byName[name]?["status"] as? String == "ready") }
        #expect(byName["playground"]?["snapshot"] as? String == "ready")
        #expect((byName["playground"]?["aliases"] as? [String])?.contains("python-3.11") == true)

        let one = try await client.get("/templates/python-3.11")
        #expect(one.status == 200)
        #expect(one.object["templateID"] as? String == "playground")
        // `agent` (the product docs' networking example) is the coding agents' template.
        #expect((byName["claude-agent"]?["aliases"] as? [String]) == ["agent"])
        let agent = try await client.get("/templates/agent")
        #expect(agent.status == 200 && agent.object["templateID"] as? String == "claude-agent", "\(agent.text)")
        let missing = try await client.get("/templates/no-such-template")
        #expect(missing.status == 404)
        #expect(missing.object["error"] as? String == "not_found")
        let bad = try await client.get("/templates/..%2Fetc")
        #expect(bad.status == 404 || bad.status == 400)
        let anonymous = try await HTTPTestClient(baseURL: server.baseURL, apiKey: nil).get("/templates")
        #expect(anonymous.status == 401)
    }

    @Test func aSandboxGetsItsTemplatesResources() async throws {
        let (_, client) = try await SharedServer.client("template-sandbox")
        let id = try await createSandbox(client, ["template": "javascript", "timeout": 120])
        let info = try await client.get("/sandboxes/\(id)")
        #expect(info.object["templateID"] as? String == "javascript")
        #expect(info.object["memoryMB"] as? Int == 512)
        #expect(info.object["cpuCount"] as? Int == 1)
        let run = try await client.post("/sandboxes/\(id)/commands", ["command": "node -e 'console.log(1 + 1)'"])
        #expect(run.object["stdout"] as? String == "2\n")
        #expect(try await client.delete("/sandboxes/\(id)").status == 204)
    }
}
