import AgentClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SandboxRuntime
import Testing
import TestSupport

/// The `desktop` template through the real API: a sandbox restored from the template's
/// snapshot has its screen up at once; screenshots are exact PNGs; mouse and keyboard
/// input arrives where and as it was sent (watched with `xev` and in a terminal); noVNC
/// answers on port 6080 with the VNC server's banner. Runs when the desktop image is built
/// (`make image TEMPLATE=desktop`) or `OMNIRUN_TEST_TEMPLATES` names it.
@Suite(
    "Desktop template", .serialized, .timeLimit(.minutes(20)),
    .enabled(if: TemplateTestGate.shouldTest("desktop")))
struct DesktopTemplateTests {
    static let server = Task<TestServer, any Error> {
        try await TestServer.start(name: "desktop", environment: ["OMNIRUN_IDLE_TIMEOUT": "900"])
    }

    /// A desktop sandbox over the API for the duration of `body`, always killed.
    static func withDesktop(_ body: (HTTPTestClient, String) async throws -> Void) async throws {
        guard TemplateTestGate.isBuilt("desktop") else {
            throw TestSetupError("template desktop is not built: run `make image TEMPLATE=desktop`")
        }
        let server = try await server.value
        let key = try server.createKey(email: "desktop-\(UUID().uuidString.prefix(8))@test.local")
        let client = server.client(key: key)
        let created = try await client.request("POST", "/sandboxes", json: ["template": "desktop"], timeout: 900)
        try #require(created.status == 201, "\(created.text)")
        let id = try #require(created.object["sandboxID"] as? String)
        do {
            try await body(client, id)
        } catch {
            _ = try? await client.delete("/sandboxes/\(id)")
            throw error
        }
        _ = try await client.delete("/sandboxes/\(id)")
    }

    /// Runs a shell command in the sandbox; returns stdout (the exit code must be 0).
    @discardableResult
    static func run(_ client: HTTPTestClient, _ id: String, _ command: String, timeout: Int = 60) async throws -> String {
        let reply = try await client.request(
            "POST", "/sandboxes/\(id)/commands", json: ["command": command, "timeout": timeout], timeout: TimeInterval(timeout + 30))
        #expect(reply.object["exit_code"] as? Int == 0, "\(command): \(reply.text)")
        return reply.object["stdout"] as? String ?? ""
    }

    static func post(_ client: HTTPTestClient, _ id: String, _ path: String, _ body: [String: Any]) async throws {
        let reply = try await client.post("/sandboxes/\(id)/desktop/\(path)", body)
        #expect(reply.status == 204, "\(path) \(body): \(reply.status) \(reply.text)")
    }

    /// Polls `command` until its output contains `needle` (windows and events take a while under emulation).
    static func waitFor(
        _ client: HTTPTestClient, _ id: String, _ command: String, contains needle: String, seconds: Int = 60
    ) async throws -> String {
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        var last = ""
        while Date() < deadline {
            let reply = try await client.post("/sandboxes/\(id)/commands", ["command": command, "timeout": 30])
            last = reply.object["stdout"] as? String ?? ""
            if last.contains(needle) { return last }
            try await Task.sleep(for: .milliseconds(300))
        }
        Issue.record("`\(command)` never showed \(needle.debugDescription); last output: \(last.suffix(800))")
        return last
    }

    /// Size and chosen pixels of a PNG (decoded with Python's zlib by scripts/testdata/png-probe.py).
    static func probe(_ png: Data, _ points: [(Int, Int)]) throws -> (width: Int, height: Int, pixels: [String: [Int]]) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("shot-\(UUID().uuidString).png")
        try png.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [TestServer.packageRoot + "/scripts/testdata/png-probe.py", file.path] + points.map { "\($0.0),\($0.1)" }
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "png-probe failed: \(String(decoding: data, as: UTF8.self))")
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (object["width"] as? Int ?? 0, object["height"] as? Int ?? 0, object["pixels"] as? [String: [Int]] ?? [:])
    }

    @Test func screenshotIsAnExactPNGOfTheScreen() async throws {
        try await Self.withDesktop { client, id in
            let screen = try await client.get("/sandboxes/\(id)/desktop/screen")
            #expect(screen.status == 200, "\(screen.text)")
            #expect(screen.object["width"] as? Int == 1024)
            #expect(screen.object["height"] as? Int == 768)
            #expect(screen.object["cursorX"] is Int && screen.object["cursorY"] is Int)

            // The desktop is up at once: the panel and the desktop window are mapped.
            try await Self.run(client, id, "xdotool search --onlyvisible --class xfce4-panel")

            // Paint the root window a known colour, with the desktop's own window (which
            // covers it) unmapped.
            try await Self.run(
                client, id,
                "for w in $(xdotool search --onlyvisible --class xfdesktop); do xdotool windowunmap --sync $w; done; "
                    + "xsetroot -solid '#12ab34'; sleep 1")
            let shot = try await client.get("/sandboxes/\(id)/desktop/screenshot")
            #expect(shot.status == 200)
            #expect(shot.header("content-type") == "image/png")
            #expect(shot.body.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
            let probed = try Self.probe(shot.body, [(512, 400), (1000, 700)])
            #expect(probed.width == 1024 && probed.height == 768)
            #expect(probed.pixels["512,400"] == [0x12, 0xAB, 0x34], "\(probed.pixels)")
            #expect(probed.pixels["1000,700"] == [0x12, 0xAB, 0x34], "\(probed.pixels)")

            let stream = try await client.get("/sandboxes/\(id)/desktop/stream")
            #expect(stream.status == 200)
            #expect(stream.object["novncPort"] as? Int == 6080)
            #expect(stream.object["vncPort"] as? Int == 5900)
            #expect(stream.object["wsPath"] as? String == "/websockify")
        }
    }

    @Test func mouseInputArrivesAtItsCoordinates() async throws {
        try await Self.withDesktop { client, id in
            _ = try await client.post(
                "/sandboxes/\(id)/commands",
                ["command": "stdbuf -oL xev -name xevtest -geometry 400x300 > /tmp/xev.log 2>&1", "background": true])
            let geometry = try await Self.waitFor(
                client, id, "xdotool search --onlyvisible --name '^xevtest$' getwindowgeometry --shell", contains: "WIDTH=")
            var values: [String: Int] = [:]
            for line in geometry.split(separator: "\n") {
                let parts = line.split(separator: "=")
                if parts.count == 2 { values[String(parts[0])] = Int(parts[1]) }
            }
            let (wx, wy) = (try #require(values["X"]), try #require(values["Y"]))
            let (x, y) = (wx + 100, wy + 80)

            try await Self.post(client, id, "mouse", ["action": "click", "x": x, "y": y])
            _ = try await Self.waitFor(client, id, "cat /tmp/xev.log", contains: "ButtonRelease")
            try await Self.post(client, id, "mouse", ["action": "doubleClick", "x": x + 10, "y": y + 10])
            try await Self.post(client, id, "mouse", ["action": "rightClick", "x": x + 20, "y": y + 20])
            try await Self.post(client, id, "mouse", ["action": "drag", "x": x, "y": y, "endX": x + 150, "endY": y + 100])
            try await Self.post(client, id, "mouse", ["action": "scroll", "x": x + 30, "y": y + 30, "direction": "down", "amount": 3])
            try await Self.post(client, id, "mouse", ["action": "scroll", "direction": "up"])
            try await Self.post(client, id, "mouse", ["action": "move", "x": 0, "y": 0])
            let screen = try await client.get("/sandboxes/\(id)/desktop/screen")
            #expect(screen.object["cursorX"] as? Int == 0 && screen.object["cursorY"] as? Int == 0, "\(screen.text)")
            // The public CLI sends `parseFloat` coordinates (a14a-org/omnirun-cli src/cli.ts,
            // `desktop move`): rounded to the nearest pixel.
            try await Self.post(client, id, "mouse", ["action": "move", "x": 12.6, "y": 7.4])
            let rounded = try await client.get("/sandboxes/\(id)/desktop/screen")
            #expect(rounded.object["cursorX"] as? Int == 13 && rounded.object["cursorY"] as? Int == 7, "\(rounded.text)")
            try await Self.post(client, id, "mouse", ["action": "move", "x": 0, "y": 0])

            let log = try await Self.waitFor(client, id, "cat /tmp/xev.log", contains: "button 4,")
            // Each press, as xev saw it: its root coordinates and button.
            let presses = Self.events(log, "ButtonPress")
            let releases = Self.events(log, "ButtonRelease")
            let expected: [(Int, Int, Int)] = [
                (x, y, 1),  // click
                (x + 10, y + 10, 1), (x + 10, y + 10, 1),  // double click
                (x + 20, y + 20, 3),  // right click
                (x, y, 1),  // drag: pressed at the start...
                (x + 30, y + 30, 5), (x + 30, y + 30, 5), (x + 30, y + 30, 5),  // scroll down 3
                (x + 30, y + 30, 4),  // scroll up 1, where the pointer was
            ]
            #expect(presses.map { "\($0.0),\($0.1) b\($0.2)" } == expected.map { "\($0.0),\($0.1) b\($0.2)" }, "\(log.suffix(3000))")
            // ...released at the end
            #expect(releases.contains { $0 == (x + 150, y + 100, 1) }, "\(releases)")
        }
    }

    /// `(rootX, rootY, button)` of every event of `kind` in xev's output.
    static func events(_ log: String, _ kind: String) -> [(Int, Int, Int)] {
        var result: [(Int, Int, Int)] = []
        let blocks = log.components(separatedBy: "\n\n")
        for block in blocks where block.hasPrefix(kind) {
            guard let rootRange = block.range(of: "root:("), let close = block[rootRange.upperBound...].firstIndex(of: ")"),
                let buttonRange = block.range(of: "button ")
            else { continue }
            let coordinates = block[rootRange.upperBound..<close].split(separator: ",").compactMap { Int($0) }
            let button = Int(block[buttonRange.upperBound...].prefix { $0.isNumber }) ?? -1
            if coordinates.count == 2 { result.append((coordinates[0], coordinates[1], button)) }
        }
        return result
    }

    @Test func typingAndKeysReachATerminal() async throws {
        try await Self.withDesktop { client, id in
            // A terminal whose shell stores the line it reads, then waits to be interrupted.
            let script = """
                IFS= read -r line; printf %s "$line" > /tmp/typed; \
                python3 -c 'import time, pathlib
                pathlib.Path("/tmp/sleeping").touch()
                try:
                    time.sleep(600)
                except KeyboardInterrupt:
                    pathlib.Path("/tmp/interrupted").write_text("yes")'
                """
            try await Self.run(client, id, "cat > /tmp/term.sh <<'EOF'\n\(script)\nEOF")
            _ = try await client.post(
                "/sandboxes/\(id)/commands",
                ["command": "xfce4-terminal --disable-server -T typetest -x bash /tmp/term.sh", "background": true])
            let window = try await Self.waitFor(
                client, id, "xdotool search --onlyvisible --name '^typetest$' | head -n1", contains: "\n", seconds: 120)
            let wid = window.trimmingCharacters(in: .whitespacesAndNewlines)
            try await Self.run(client, id, "xdotool windowactivate --sync \(wid)")

            let text = "héllo -\"x\" €日"
            let reply = try await client.post("/sandboxes/\(id)/desktop/keyboard", ["action": "type", "text": text])
            #expect(reply.status == 204, "\(reply.text)")
            try await Self.post(client, id, "keyboard", ["action": "press", "key": "Enter"])
            _ = try await Self.waitFor(client, id, "ls /tmp", contains: "typed")
            let typed = try await client.get("/sandboxes/\(id)/files?path=/tmp/typed")
            #expect(typed.object["content"] as? String == text, "typed \(typed.text)")

            _ = try await Self.waitFor(client, id, "ls /tmp", contains: "sleeping")
            try await Self.post(client, id, "keyboard", ["action": "press", "key": "ctrl+c"])
            _ = try await Self.waitFor(client, id, "cat /tmp/interrupted 2>/dev/null", contains: "yes")

            let unknown = try await client.post("/sandboxes/\(id)/desktop/keyboard", ["action": "press", "key": "ctrl+Frobnicate"])
            #expect(unknown.status == 400)
            #expect(((unknown.object["message"] as? String) ?? "").contains("Frobnicate"), "\(unknown.text)")
        }
    }

    /// noVNC's websocket on port 6080 (reached here through the agent tunnel, as an
    /// exposure reaches it) completes the handshake and relays the VNC server's banner.
    @Test func novncRelaysTheVNCBanner() async throws {
        try await TemplateTestGate.withSandbox("desktop") { sandbox in
            let page = NIOLockedValueBox(ByteBuffer())
            let get = ByteBuffer(string: "GET /vnc.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
            try await sandbox.tunnel(port: 6080, upstream: [get].asyncSequence) { chunk in
                var chunk = chunk
                page.withLockedValue { _ = $0.writeBuffer(&chunk) }
            }
            let html = page.withLockedValue { String(buffer: $0) }
            #expect(html.hasPrefix("HTTP/1.1 200") || html.hasPrefix("HTTP/1.0 200"), "\(html.prefix(200))")
            #expect(html.contains("noVNC"))

            let (upstream, input) = AsyncStream<ByteBuffer>.makeStream()
            input.yield(ByteBuffer(string: "GET /websockify HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n"))
            let received = NIOLockedValueBox(ByteBuffer())
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await sandbox.tunnel(port: 6080, upstream: upstream) { chunk in
                        var chunk = chunk
                        let text = received.withLockedValue { buffer in
                            _ = buffer.writeBuffer(&chunk)
                            return String(decoding: buffer.readableBytesView, as: UTF8.self)
                        }
                        if text.contains("RFB 003.00") { input.finish() }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(30))
                    input.finish()
                }
                try await group.next()
                group.cancelAll()
            }
            let bytes = received.withLockedValue { Array($0.readableBytesView) }
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 101"), "\(text.prefix(300))")
            // after the handshake: one binary frame (0x82), unmasked, 12 bytes: the RFB banner
            let headerEnd = try #require(text.range(of: "\r\n\r\n"))
            let frame = Array(bytes[text.utf8.distance(from: text.startIndex, to: headerEnd.upperBound)...])
            #expect(frame.count >= 14)
            #expect(frame.first == 0x82 && frame.dropFirst().first == 12)
            #expect(String(decoding: frame.dropFirst(2).prefix(12), as: UTF8.self) == "RFB 003.008\n")
        }
    }
}
