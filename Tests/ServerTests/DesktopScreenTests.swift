import Foundation
import Testing
import TestSupport

/// A desktop's screen as a computer-use agent first sees it: the first screenshot after the
/// create is the finished desktop (the template's snapshot is taken once every panel is
/// painted and the screen has settled), and `RESOLUTION` sizes the screen at create.
@Suite(
    "Desktop screen at create", .serialized, .timeLimit(.minutes(20)),
    .enabled(if: TemplateTestGate.shouldTest("desktop")))
struct DesktopScreenTests {
    /// Pixels that differ between two PNG screenshots of the same size, and their bounding box.
    static func difference(_ first: Data, _ second: Data) throws -> (differing: Int, box: [Int]?) {
        let directory = FileManager.default.temporaryDirectory
        let a = directory.appendingPathComponent("shot-\(UUID().uuidString).png")
        let b = directory.appendingPathComponent("shot-\(UUID().uuidString).png")
        try first.write(to: a)
        try second.write(to: b)
        defer {
            try? FileManager.default.removeItem(at: a)
            try? FileManager.default.removeItem(at: b)
        }
        let out = runTool(["/usr/bin/python3", TestServer.packageRoot + "/scripts/testdata/png-probe.py", a.path, "--diff", b.path])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "\(out)")
        let differing = try #require(object["differing"] as? Int, "sizes differ: \(out)")
        return (differing, object["box"] as? [Int])
    }

    @Test func theFirstScreenshotIsTheFinishedDesktop() async throws {
        try await DesktopTemplateTests.withDesktop { client, id in
            let first = try await client.get("/sandboxes/\(id)/desktop/screenshot")
            #expect(first.status == 200)
            try await Task.sleep(for: .seconds(6))
            let later = try await client.get("/sandboxes/\(id)/desktop/screenshot")
            #expect(later.status == 200)
            // The panel's clock may tick between the two (a few hundred pixels); an unpainted
            // panel (a black bar, 1024x26) or a missing dock would be tens of thousands.
            let (differing, box) = try Self.difference(first.body, later.body)
            #expect(differing < 2000, "\(differing) pixels differ, within \(box ?? [])")
        }
    }

    @Test func resolutionSizesTheScreenAtCreate() async throws {
        let server = try await DesktopTemplateTests.server.value
        let client = server.client(key: try server.createKey(email: "resolution-\(UUID().uuidString.prefix(8))@test.local"))
        for bad in ["big", "1280x", "1280x800x16", "100000x800", "1280x800x24x1"] {
            let refused = try await client.post("/sandboxes", ["template": "desktop", "envVars": ["RESOLUTION": bad]])
            #expect(refused.status == 400 && refused.object["error"] as? String == "invalid_argument", "\(bad): \(refused.text)")
        }
        let created = try await client.request(
            "POST", "/sandboxes", json: ["template": "desktop", "envVars": ["RESOLUTION": "1280x800x24"]], timeout: 900)
        try #require(created.status == 201, "\(created.text)")
        let id = try #require(created.object["sandboxID"] as? String)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let screen = try await client.get("/sandboxes/\(id)/desktop/screen")
        #expect(screen.object["width"] as? Int == 1280 && screen.object["height"] as? Int == 800, "\(screen.text)")
        let shot = try await client.get("/sandboxes/\(id)/desktop/screenshot")
        let probed = try DesktopTemplateTests.probe(shot.body, [(1279, 799)])
        #expect(probed.width == 1280 && probed.height == 800)
        // The panel was laid out again for the new width: its right end is painted.
        try await Task.sleep(for: .seconds(3))
        let later = try await client.get("/sandboxes/\(id)/desktop/screenshot")
        let (differing, box) = try Self.difference(shot.body, later.body)
        #expect(differing < 2000, "\(differing) pixels differ, within \(box ?? [])")
        #expect(try await DesktopTemplateTests.run(client, id, "echo $RESOLUTION") == "1280x800x24\n")
    }
}
