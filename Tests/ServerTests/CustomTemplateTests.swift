import AgentClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import QEMUDriver
import SandboxRuntime
import Testing
import TestSupport

/// Custom templates built from a Dockerfile by a real server: every RUN and COPY runs in a
/// build machine, the start command serves HTTP before the snapshot, layers are reused.
/// Builds queue on the server, so the tests run one after the other on one server.
@Suite("Custom templates from a Dockerfile", .serialized, .timeLimit(.minutes(20)))
struct CustomTemplateTests {
    static let server = Task<TestServer, any Error> {
        try await TestServer.start(name: "templates", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
    }

    static func client(_ label: String) async throws -> (TestServer, HTTPTestClient) {
        let server = try await server.value
        let key = try server.createKey(email: "\(label)-\(UUID().uuidString.prefix(8))@test.local")
        return (server, server.client(key: key))
    }

    static let dockerfile = """
        FROM playground
        ARG GREETING=hello
        ENV APP_HOME=/srv/app GREETING_FILE=greeting.txt
        WORKDIR /srv/app
        COPY site/ ./site/
        COPY app.py ./
        RUN echo "$GREETING from the build" > "$GREETING_FILE" && \\
            mkdir -p /srv/app/data && chown -R user:user /srv/app/data
        USER user
        RUN whoami > data/whoami.txt
        """

    /// The build context: `site/index.html` and `app.py`, as a tar.
    static func context() throws -> Data {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ctx-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/site", withIntermediateDirectories: true)
        try "<h1>built by a Dockerfile</h1>\n".write(toFile: dir + "/site/index.html", atomically: true, encoding: .utf8)
        try "print('app')\n".write(toFile: dir + "/app.py", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/tar")
        process.arguments = ["-c", "-C", dir, "--mtime=2026-01-01", "--owner=0", "--group=0", "--sort=name", "site", "app.py"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return data
    }

    static func settings(_ name: String, _ extra: [String: Any] = [:]) throws -> String {
        var object: [String: Any] = [
            "name": name, "memoryMB": 512, "description": "a test template",
            "startCmd": "python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/app/site",
            "readyCmd": "curl -sf http://127.0.0.1:8000/ >/dev/null",
        ]
        for (key, value) in extra { object[key] = value }
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// Starts a build and polls it to its end; returns the final build object.
    static func build(
        _ client: HTTPTestClient, name: String, dockerfile: String = dockerfile, settings: [String: Any] = [:],
        context: Data? = nil
    ) async throws -> [String: Any] {
        var files: [(name: String, filename: String, data: Data)] = []
        if let context { files.append(("context", "context.tar", context)) }
        let started = try await client.multipart(
            "/templates", fields: [("dockerfile", dockerfile), ("settings", try Self.settings(name, settings))], files: files)
        #expect(started.status == 202, "\(started.text)")
        guard let buildID = started.object["buildID"] as? String else { throw HTTPTestError("no buildID: \(started.text)") }
        #expect(started.object["status"] as? String == "building")
        let deadline = Date().addingTimeInterval(900)
        while Date() < deadline {
            let reply = try await client.get("/templates/\(name)/builds/\(buildID)")
            if reply.object["status"] as? String != "building" { return reply.object }
            try await Task.sleep(for: .seconds(1))
        }
        throw HTTPTestError("build \(buildID) of \(name) did not finish")
    }

    static func logs(_ build: [String: Any]) -> [String] { build["logs"] as? [String] ?? [] }

    @Test func aDockerfileBecomesATemplateWhoseServiceAnswersAtOnce() async throws {
        let (server, client) = try await Self.client("builder")
        let name = "web-\(UUID().uuidString.prefix(6).lowercased())"
        let context = try Self.context()
        let built = try await Self.build(client, name: name, context: context)
        let log = Self.logs(built).joined(separator: "\n")
        #expect(built["status"] as? String == "ready", "\(built["error"] ?? "")\n\(log)")
        #expect(log.contains("step 1/4 (line 5): COPY site/ ./site/"))
        #expect(log.contains("step 4/4 (line 10): RUN whoami > data/whoami.txt"))

        // The stream replays the whole log and ends with the outcome.
        let events = try await client.events("/templates/\(name)/builds/\(built["buildID"] as? String ?? "")")
        #expect(events.last?["type"] as? String == "end")
        #expect(events.last?["status"] as? String == "ready")
        #expect(events.filter { ["log", "step"].contains($0["type"] as? String) }.count == Self.logs(built).count)
        #expect(events.contains { $0["type"] as? String == "step" && $0["stepStatus"] as? String == "done" && $0["step"] as? Int == 4 })

        // Listed for its owner, with its settings.
        let listed = try await client.get("/templates").array.first { $0["templateID"] as? String == name }
        #expect(listed?["status"] as? String == "ready")
        #expect(listed?["builtIn"] as? Bool == false)
        #expect(listed?["usable"] as? Bool == true)
        #expect(listed?["memoryMB"] as? Int == 512)

        // A sandbox: the service answers at once, ENV/WORKDIR/USER/COPY/RUN are all there.
        let created = try await client.post("/sandboxes", ["template": name, "timeout": 300])
        #expect(created.status == 201, "\(created.text)")
        let id = created.object["sandboxID"] as? String ?? ""
        let check = """
            curl -s http://127.0.0.1:8000/index.html; pwd; whoami; echo "$APP_HOME"; cat greeting.txt data/whoami.txt; \
            stat -c '%U %n' app.py site/index.html
            """
        let run = try await client.post("/sandboxes/\(id)/commands", ["command": check])
        #expect(run.object["exit_code"] as? Int == 0, "\(run.text)")
        #expect(
            run.object["stdout"] as? String
                == "<h1>built by a Dockerfile</h1>\n/srv/app\nuser\n/srv/app\nhello from the build\nuser\nroot app.py\nroot site/index.html\n")
        #expect(try await client.delete("/sandboxes/\(id)").status == 204)

        // Through the agent tunnel, from a runtime of this test process that restores the
        // same snapshot: the port answers with no wait.
        let runtime = try Self.runtime(reading: server)
        let sandbox = try await runtime.create(SandboxSpec(template: name))
        do {
            let response = NIOLockedValueBox(ByteBuffer())
            let request = ByteBuffer(string: "GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
            try await sandbox.tunnel(port: 8000, upstream: [request].asyncSequence) { chunk in
                var chunk = chunk
                response.withLockedValue { _ = $0.writeBuffer(&chunk) }
            }
            let text = response.withLockedValue { String(buffer: $0) }
            #expect(text.hasPrefix("HTTP/1.0 200"), "\(text)")
            #expect(text.hasSuffix("<h1>built by a Dockerfile</h1>\n"))
        } catch {
            await runtime.destroyAll()
            throw error
        }
        await runtime.destroyAll()

        // Another account sees nothing of it.
        let (_, stranger) = try await Self.client("stranger")
        #expect(try await stranger.get("/templates/\(name)").status == 404)
        #expect(try await stranger.get("/templates").array.allSatisfy { $0["templateID"] as? String != name })
        #expect(try await stranger.post("/sandboxes", ["template": name]).status == 404)
        #expect(try await stranger.delete("/templates/\(name)").status == 404)
        #expect(try await stranger.get("/templates/\(name)/builds/\(built["buildID"] as? String ?? "")").status == 404)
        let taken = try await stranger.multipart(
            "/templates", fields: [("dockerfile", "FROM playground\n"), ("settings", try Self.settings(name))])
        #expect(taken.status == 409, "\(taken.text)")

        // Deleted: gone for its owner too.
        #expect(try await client.delete("/templates/\(name)").status == 204)
        #expect(try await client.get("/templates/\(name)").status == 404)
        #expect(try await client.post("/sandboxes", ["template": name]).status == 404)
    }

    @Test func anUnchangedPrefixIsNotRebuilt() async throws {
        let (_, client) = try await Self.client("cache")
        let name = "cached-\(UUID().uuidString.prefix(6).lowercased())"
        let context = try Self.context()
        let first = try await Self.build(client, name: name, context: context)
        #expect(first["status"] as? String == "ready", "\(first["error"] ?? "")")
        // A sandbox of the first version keeps running through the rebuilds.
        let old = try await createSandbox(client, ["template": name, "timeout": 600])
        // The same again: every step cached, the image and snapshot too.
        let started = Date()
        let again = try await Self.build(client, name: name, context: context)
        #expect(again["status"] as? String == "ready")
        #expect(Date().timeIntervalSince(started) < 30)
        let againLog = Self.logs(again)
        #expect(againLog.filter { $0.hasSuffix("(cached)") }.count == 4, "\(againLog.joined(separator: "\n"))")
        // Edit the last RUN: only it runs again.
        let edited = Self.dockerfile.replacingOccurrences(
            of: "RUN whoami > data/whoami.txt", with: "RUN whoami > data/whoami.txt && echo edited | tee data/version.txt")
        let third = try await Self.build(client, name: name, dockerfile: edited, context: context)
        #expect(third["status"] as? String == "ready", "\(third["error"] ?? "")")
        let thirdLog = Self.logs(third)
        #expect(thirdLog.filter { $0.hasSuffix("(cached)") }.count == 3, "\(thirdLog.joined(separator: "\n"))")
        #expect(thirdLog.contains("  edited"))
        // --no-cache: every step runs again, and later builds still find the cache.
        let fourth = try await Self.build(client, name: name, dockerfile: edited, settings: ["noCache": true], context: context)
        let fourthLog = Self.logs(fourth)
        #expect(fourth["status"] as? String == "ready", "\(fourth["error"] ?? "")")
        #expect(fourthLog.contains("--no-cache: every step runs again"))
        #expect(!fourthLog.contains { $0.hasSuffix("(cached)") }, "\(fourthLog.joined(separator: "\n"))")
        #expect(fourthLog.filter { $0.hasPrefix("step ") && $0.contains(" done in ") }.count == 4)
        let fifth = try await Self.build(client, name: name, dockerfile: edited, context: context)
        #expect(Self.logs(fifth).filter { $0.hasSuffix("(cached)") }.count == 4)
        // New sandboxes get the new version; the old one still answers, with the old files.
        let new = try await createSandbox(client, ["template": name, "timeout": 600])
        let newRun = try await client.post("/sandboxes/\(new)/commands", ["command": "cat data/version.txt"])
        #expect(newRun.object["stdout"] as? String == "edited\n", "\(newRun.text)")
        let oldRun = try await client.post("/sandboxes/\(old)/commands", ["command": "ls data; curl -s localhost:8000/index.html"])
        #expect(oldRun.object["stdout"] as? String == "whoami.txt\n<h1>built by a Dockerfile</h1>\n", "\(oldRun.text)")
        for id in [old, new] { #expect(try await client.delete("/sandboxes/\(id)").status == 204) }
        #expect(try await client.delete("/templates/\(name)").status == 204)
    }

    @Test func badBuildsFailClearly() async throws {
        let (_, client) = try await Self.client("failures")
        // A failing RUN: its exit code and the tail of its output.
        let name = "broken-\(UUID().uuidString.prefix(6).lowercased())"
        let failed = try await Self.build(
            client, name: name, dockerfile: "FROM debian:bookworm\nRUN echo about to fail && exit 3\n", settings: ["startCmd": NSNull(), "readyCmd": NSNull()])
        #expect(failed["status"] as? String == "failed")
        let error = failed["error"] as? String ?? ""
        #expect(error.contains("line 2") && error.contains("exit code 3") && error.contains("about to fail"), "\(error)")
        #expect(try await client.post("/sandboxes", ["template": name]).status == 409)
        #expect(try await client.delete("/templates/\(name)").status == 204)

        // A ready check that never passes.
        let slow = "never-\(UUID().uuidString.prefix(6).lowercased())"
        let timedOut = try await Self.build(
            client, name: slow, dockerfile: "FROM playground\nENV A=1\n",
            settings: ["startCmd": "sleep 600", "readyCmd": "false", "readyTimeout": 3])
        #expect(timedOut["status"] as? String == "failed")
        #expect((timedOut["error"] as? String ?? "").contains("the ready check `false` did not pass within 3"), "\(timedOut)")
        #expect(try await client.delete("/templates/\(slow)").status == 204)

        // Refused at once: unsupported instructions (with their line), bad names and settings.
        let cases: [(String, String, Int, String)] = [
            ("FROM playground\nRUN true\nONBUILD RUN x\n", #"{"name":"ok-name"}"#, 400, "line 3: unsupported instruction ONBUILD"),
            ("FROM ubuntu:24.04\n", #"{"name":"ok-name"}"#, 400, "use a built-in template"),
            ("FROM playground\n", #"{"name":"Bad Name"}"#, 400, "invalid template name"),
            ("FROM playground\n", #"{"name":"rust"}"#, 409, "built-in"),
            ("FROM playground\n", #"{"name":"ok-name","memoryMB":999999}"#, 400, "memoryMB"),
            ("FROM playground\nCOPY a /a\n", #"{"name":"ok-name"}"#, 400, "needs a build context"),
            ("FROM playground\n", "not json", 400, "settings"),
        ]
        for (dockerfile, settings, status, needle) in cases {
            let reply = try await client.multipart("/templates", fields: [("dockerfile", dockerfile), ("settings", settings)])
            #expect(reply.status == status, "\(dockerfile) \(settings): \(reply.text)")
            #expect((reply.object["message"] as? String ?? "").contains(needle), "\(reply.text)")
            #expect(reply.object["error"] != nil)
        }
        let noParts = try await client.request("POST", "/templates", json: ["name": "x"])
        #expect(noParts.status == 400)
        #expect(try await client.delete("/templates/playground").status == 403)
    }

    @Test func theCommandLineBuildsAFolderAndShowsProgress() async throws {
        let (server, client) = try await Self.client("cli")
        let name = "cli-\(UUID().uuidString.prefix(6).lowercased())"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "FROM playground\nCOPY note.txt /opt/note.txt\n".write(toFile: dir + "/Dockerfile", atomically: true, encoding: .utf8)
        try "from the command line\n".write(toFile: dir + "/note.txt", atomically: true, encoding: .utf8)
        let (status, output) = try await Self.runCLI(
            ["template", "build", dir, "--name", name, "--url", server.baseURL, "--api-key", client.apiKey ?? ""])
        #expect(status == 0, "\(output)")
        // Each step as it runs, with the time since the start: its number, line and instruction, then how long it took.
        #expect(output.contains("s  step 1/1 (line 2): COPY note.txt /opt/note.txt"), "\(output)")
        #expect(output.contains("s  step 1/1 done in "), "\(output)")
        #expect(output.contains("[template] \(name) is ready"), "\(output)")
        // omni: the same progress; built again, the step comes from the cache.
        let omni = (TestServer.binary as NSString).deletingLastPathComponent + "/omni"
        let (omniStatus, omniOutput) = try await Self.runCLI(
            ["template", "build", dir, "--name", name, "--api-url", server.baseURL, "--api-key", client.apiKey ?? ""], binary: omni)
        #expect(omniStatus == 0, "\(omniOutput)")
        #expect(omniOutput.contains("s  step 1/1 (line 2): COPY note.txt /opt/note.txt (cached)"), "\(omniOutput)")
        #expect(omniOutput.contains("Template \(name) is ready"), "\(omniOutput)")
        let (rebuiltStatus, rebuilt) = try await Self.runCLI(
            ["template", "build", dir, "--name", name, "--no-cache", "--url", server.baseURL, "--api-key", client.apiKey ?? ""])
        #expect(rebuiltStatus == 0 && rebuilt.contains("step 1/1 done in ") && !rebuilt.contains("(cached)"), "\(rebuilt)")
        let id = try await createSandbox(client, ["template": name, "timeout": 120])
        let run = try await client.post("/sandboxes/\(id)/commands", ["command": "cat /opt/note.txt"])
        #expect(run.object["stdout"] as? String == "from the command line\n")
        #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        let (listStatus, list) = try await Self.runCLI(["template", "list", "--url", server.baseURL, "--api-key", client.apiKey ?? ""])
        #expect(listStatus == 0 && list.contains(name) && list.contains("claude-agent"), "\(list)")
        let (deleteStatus, _) = try await Self.runCLI(["template", "delete", name, "--url", server.baseURL, "--api-key", client.apiKey ?? ""])
        #expect(deleteStatus == 0)
        #expect(try await client.get("/templates/\(name)").status == 404)
    }

    @Test func aBuildCutShortByACrashFailsAndLeavesNoMachine() async throws {
        let server = try await TestServer.start(name: "template-crash")
        do {
            let client = server.client()
            let name = "crash-\(UUID().uuidString.prefix(6).lowercased())"
            let started = try await client.multipart(
                "/templates", fields: [("dockerfile", "FROM playground\nRUN echo running && sleep 120\n"), ("settings", #"{"name":"\#(name)"}"#)])
            let build = started.object["buildID"] as? String ?? ""
            #expect(started.status == 202, "\(started.text)")
            // Wait until the step runs in its build machine, then crash the server.
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                let logs = try await client.get("/templates/\(name)/builds/\(build)").object["logs"] as? [String] ?? []
                if logs.contains("  running") { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(!hostProcesses(matching: server.dataDirectory + "/builds/").isEmpty)
            server.crash()
            try await server.restart()
            let after = try await client.get("/templates/\(name)/builds/\(build)")
            #expect(after.object["status"] as? String == "failed")
            #expect((after.object["error"] as? String ?? "").contains("interrupted"), "\(after.text)")
            #expect(hostProcesses(matching: server.dataDirectory + "/builds/").isEmpty)
            #expect(try await client.post("/sandboxes", ["template": name]).status == 409)
            #expect(try await client.delete("/templates/\(name)").status == 204)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    /// Runs `omnirun` and waits for it without holding a thread.
    static func runCLI(_ arguments: [String], binary: String = TestServer.binary) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        try? handle.close()
        return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }

    /// A runtime of this process that also reads the server's custom template manifests
    /// (and shares its snapshot folder).
    static func runtime(reading server: TestServer) throws -> SandboxRuntime {
        var logger = Logger(label: "omnirun.test.custom")
        logger.logLevel = .warning
        var qemu = QEMUConfiguration()
        if ProcessInfo.processInfo.environment["OMNIRUN_ACCEL"] == "kvm" { qemu.accelerator = .kvm }
        if ProcessInfo.processInfo.environment["OMNIRUN_ACCEL"] == "tcg" { qemu.accelerator = .tcg }
        let driver = try QEMUDriver(configuration: qemu, logger: logger)
        let catalog = ImageCatalog(
            cacheDirectory: ImageCatalog.defaultCacheDirectory(environment: ProcessInfo.processInfo.environment),
            extraManifestDirectories: [server.dataDirectory + "/templates/manifests"])
        var configuration = SandboxRuntime.Configuration(dataDirectory: TestRuntime.dataDirectory + "/custom-\(getpid())")
        configuration.snapshotDirectory = TestRuntime.snapshotDirectory
        return SandboxRuntime(driver: driver, catalog: catalog, configuration: configuration, logger: logger)
    }
}
