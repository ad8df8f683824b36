import Foundation
import Testing
import TestSupport

/// The live view and scaled screenshots of a desktop sandbox, through the real server: noVNC
/// reached through a private exposure of port 6080 (the preview gateway and the agent
/// tunnel; the sandbox has no network), refused without the exposure's token, its websocket
/// greeting with the VNC banner, and the page loaded in headless Chromium until noVNC is
/// connected — the browser's screenshot is kept as a test artifact.
extension DesktopTemplateTests {
    @Test func scaledScreenshotsReportTheirFactor() async throws {
        try await Self.withDesktop { client, id in
            try await Self.run(
                client, id,
                "for w in $(xdotool search --onlyvisible --class xfdesktop); do xdotool windowunmap --sync $w; done; "
                    + "xsetroot -solid '#3366cc'; sleep 1")
            let full = try await client.get("/sandboxes/\(id)/desktop/screenshot")
            #expect(full.status == 200)
            #expect(full.header("x-omnirun-scale-factor") == "1.0")
            #expect(full.header("x-omnirun-screen-width") == "1024" && full.header("x-omnirun-screen-height") == "768")

            let half = try await client.get("/sandboxes/\(id)/desktop/screenshot?scale=0.5")
            #expect(half.status == 200, "\(half.text)")
            #expect(half.header("content-type") == "image/png")
            #expect(half.header("x-omnirun-scale-factor") == "0.5")
            #expect(half.header("x-omnirun-screen-width") == "1024")
            let probedHalf = try Self.probe(half.body, [(256, 200), (500, 370)])
            #expect(probedHalf.width == 512 && probedHalf.height == 384)
            #expect(probedHalf.pixels["256,200"] == [0x33, 0x66, 0xCC], "\(probedHalf.pixels)")
            #expect(probedHalf.pixels["500,370"] == [0x33, 0x66, 0xCC], "\(probedHalf.pixels)")

            // fit in a box: 1024×768 into 800×800 is 800×600
            let boxed = try await client.get("/sandboxes/\(id)/desktop/screenshot?maxWidth=800&maxHeight=800")
            #expect(boxed.status == 200, "\(boxed.text)")
            #expect(boxed.header("x-omnirun-scale-factor") == "0.78125")
            let probedBox = try Self.probe(boxed.body, [(400, 300)])
            #expect(probedBox.width == 800 && probedBox.height == 600)
            #expect(probedBox.pixels["400,300"] == [0x33, 0x66, 0xCC])

            for bad in ["scale=2", "scale=0", "scale=abc", "maxWidth=0", "scale=0.5&maxWidth=100"] {
                let refused = try await client.get("/sandboxes/\(id)/desktop/screenshot?\(bad)")
                #expect(refused.status == 400, "\(bad): \(refused.status) \(refused.text)")
                #expect(refused.object["error"] as? String == "invalid_argument")
            }
        }
    }

    @Test func liveViewThroughAPrivateExposureInChromium() async throws {
        try await Self.withDesktop { client, id in
            let server = try await Self.server.value
            let port = server.previewPort
            let created = try await client.post(
                "/sandboxes/\(id)/exposures",
                ["port": 6080, "visibility": "private", "openPath": "/vnc.html?autoconnect=1&resize=scale&path=websockify"])
            try #require(created.status == 201, "\(created.text)")
            let exposure = try #require(created.object["id"] as? String)
            let hostname = try #require(created.object["hostname"] as? String)
            let accessURL = try #require(created.object["accessUrl"] as? String)
            let token = try #require(URLComponents(string: accessURL)?.queryItems?.first { $0.name == "omnirun_token" }?.value)
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                let info = try await client.get("/sandboxes/\(id)/exposures/\(exposure)")
                if info.object["status"] as? String == "ready" { break }
                try await Task.sleep(for: .milliseconds(500))
            }

            // Without the token: the page and the websocket are refused.
            let page = try await RawHTTPClient.request(port: port, host: "\(hostname):\(port)", "/vnc.html", timeout: .seconds(90))
            #expect(page.status == 401, "\(page.status)")
            let upgrade =
                "GET /websockify HTTP/1.1\r\nHost: \(hostname):\(port)\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: binary\r\n"
            let refused = try await RawHTTPClient.with(port: port) { connection in
                try await connection.send(upgrade + "\r\n")
                return try await connection.readResponse().status
            }
            #expect(refused == 401)

            // With it: the websocket is upgraded and relays the VNC server's banner.
            let banner = try await RawHTTPClient.with(port: port) { connection in
                try await connection.send(upgrade + "x-omnirun-exposure-token: \(token)\r\n\r\n")
                let response = try await connection.readResponse(head: true)
                #expect(response.status == 101)
                let head = try await connection.readBytes(2)
                #expect(head == [0x82, 12], "\(head)")
                return String(decoding: try await connection.readBytes(12), as: UTF8.self)
            }
            #expect(banner == "RFB 003.008\n")

            // A browser opens the accessUrl (token → cookie), loads noVNC and connects.
            let artifacts = TestServer.packageRoot + "/.build/test-artifacts"
            try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
            let screenshot = artifacts + "/novnc-desktop.png"
            try? FileManager.default.removeItem(atPath: screenshot)
            let (status, output) = try await Self.chromium(accessURL, screenshot: screenshot)
            #expect(status == 0, "noVNC did not connect in Chromium: \(output)")
            let state = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
            #expect(state?["connected"] as? Bool == true, "\(output)")
            #expect((state?["url"] as? String)?.contains("omnirun_token") == false, "the token stays out of the page's URL: \(output)")
            let shot = try Data(contentsOf: URL(fileURLWithPath: screenshot))
            #expect(shot.starts(with: [0x89, 0x50, 0x4E, 0x47]))
            #expect(try Self.probe(shot, []).width == 1024)
            print("noVNC in Chromium: screenshot kept at \(screenshot)")
        }
    }

    /// Runs `scripts/testdata/novnc-chromium.py`: its exit status and output.
    static func chromium(_ url: String, screenshot: String) async throws -> (Int32, String) {
        try await ChromiumScript.run("novnc-chromium.py", [url, screenshot, "240"])
    }
}
