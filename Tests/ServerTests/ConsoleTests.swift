import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The web console in headless Chromium against a real server with real sandboxes and the
/// LLM upstream stand-in (`scripts/testdata/console-chromium.py` drives it as a person would;
/// docs/console.md). Screenshots of each page are kept in the test run's data folder.
@Suite("Web console in Chromium", .serialized, .timeLimit(.minutes(15)))
struct ConsoleTests {
    @Test func aPersonSignsInRunsASandboxAndSignsOut() async throws {
        let directory = TestRuntime.dataDirectory + "/console-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let python = try Python.interpreter(importing: "json")
        let upstreamKey = "console-upstream-\(getpid())"
        let upstream = try await HelperProcess.start(
            python, [Python.script("fake-llm-upstream.py"), "--key", upstreamKey, "--log", directory + "/requests.jsonl"],
            logPath: directory + "/upstream.log")
        defer { upstream.stop() }
        let config = directory + "/llm.json"
        let llm: [String: Any] = [
            "upstreams": [
                ["name": "fake", "baseURL": "http://127.0.0.1:\(upstream.port)/v1", "apiKeyEnv": "FAKE_UPSTREAM_KEY", "models": ["test/*"]]
            ],
            "requestsPerMinute": 100, "spendCapCents": 500, "prices": ["test/*": ["input": 1000, "output": 1000]],
        ]
        try JSONSerialization.data(withJSONObject: llm).write(to: URL(fileURLWithPath: config))
        let server = try await TestServer.start(
            name: "console",
            environment: ["OMNIRUN_SIGNUP": "open", "OMNIRUN_LLM_CONFIG": config, "FAKE_UPSTREAM_KEY": upstreamKey])
        do {
            try await Self.drive(server, directory: directory)
        } catch {
            await server.shutdown()
            throw error
        }
        // Shut down here, not in a deferred task: the process may end before such a task runs,
        // and its sandboxes with it.
        await server.shutdown()
    }

    /// What a person does with the console, checked step by step.
    static func drive(_ server: TestServer, directory: String) async throws {
        // The page and its files are served; a path that walks out of the folder is not.
        let client = HTTPTestClient(baseURL: server.baseURL, apiKey: nil)
        let page = try await client.get("/")
        #expect(page.status == 200)
        #expect(page.text.contains("<script type=\"module\" src=\"/console/app.js\">"))
        #expect(try await client.get("/console/vendor/xterm/xterm.js").status == 200, "xterm.js (scripts/console-vendor.sh)")
        for path in ["/console/..%2F..%2Fetc%2Fpasswd", "/console/.source", "/console/vendor/xterm/.source-x", "/console/app.swift"] {
            #expect(try await client.get(path).status == 404, "\(path)")
        }
        // Only the sign-in is open: the session's other routes want the session.
        #expect(try await client.get("/console/session").status == 401)

        let shots = directory + "/screenshots"
        let (status, output) = try await ChromiumScript.run(
            "console-chromium.py", [server.baseURL, server.dataDirectory + "/outbox", shots, "person-\(getpid())@console.test"])
        let steps = (try? JSONSerialization.jsonObject(with: Data(output.utf8))) as? [String: Any] ?? [:]
        for step in [
            "signIn", "keyboardSignIn", "keyboardSandboxes", "cookie", "csrf", "terminal", "files", "exposure", "keyboardTerminal", "spend", "spendChart",
            "vault", "names", "playground", "keyboardRefresh", "signOut", "templatePicker", "commands", "oneRefreshLoop", "linkSignIn",
        ] {
            let outcome = steps[step] as? [String: Any]
            #expect(outcome?["ok"] as? Bool == true, "\(step): \(outcome ?? [:]) \(steps["error"] ?? "")")
        }
        #expect(status == 0, "\(output)")
        #expect((steps["exposure"] as? [String: Any])?["private"] as? Bool == true)
        for name in ["signin.png", "sandboxes.png", "sandbox.png", "account.png", "templates.png", "playground.png", "sandbox-narrow.png", "signin-link.png"] {
            #expect(FileManager.default.fileExists(atPath: shots + "/" + name), "screenshot \(name)")
        }
        print("console screenshots kept in \(shots)")
    }
}
