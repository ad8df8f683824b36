import Foundation
import Testing
import TestSupport

/// Code contexts (wire protocol §8) over a real server, in a real playground sandbox whose
/// contexts are Jupyter kernels.
@Suite("Code contexts", .serialized, .timeLimit(.minutes(20)))
struct ContextTests {
    @Test func contextsKeepStateApartAndReturnRichResults() async throws {
        let (server, client) = try await SharedServer.client("contexts")
        let id = try await createSandbox(client, ["template": "playground", "timeout": 600])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let base = "/sandboxes/\(id)/contexts"
        do {
            let made = try await client.post("/sandboxes/\(id)/commands", ["command": "mkdir -p /tmp/work && echo data > /tmp/work/in.txt"])
            #expect(made.object["exit_code"] as? Int == 0, "\(made.text)")

            let created = try await longCall(client, "POST", base, ["language": "python", "cwd": "/tmp/work"])
            #expect(created.status == 200, "\(created.text)")
            #expect(created.header("Content-Type")?.hasPrefix("application/json") == true)
            let a = created.object["id"] as? String ?? ""
            #expect(a.range(of: "^ctx_[0-9a-f]{16}$", options: .regularExpression) != nil, "\(created.text)")
            #expect(created.object["language"] as? String == "python")
            #expect(created.object["cwd"] as? String == "/tmp/work")
            #expect((created.object["created_at"] as? String)?.hasSuffix("Z") == true, "\(created.text)")
            let other = try await longCall(client, "POST", base, ["language": "python"])
            let b = other.object["id"] as? String ?? ""
            #expect(other.status == 200 && b != a, "\(other.text)")
            #expect(other.object["cwd"] as? String == "/home/user", "\(other.text)")

            // State persists in one context and not in the other.
            let set = try await execute(client, base, a, "x = 41\nprint('set', x)")
            #expect((set.object["logs"] as? [String: Any])?["stdout"] as? String == "set 41\n", "\(set.text)")
            #expect((set.object["results"] as? [Any])?.isEmpty == true, "\(set.text)")
            #expect(set.object["execution_count"] as? Int == 1)
            let read = try await execute(client, base, a, "x + 1")
            #expect(texts(read) == ["42"], "\(read.text)")
            #expect(read.object["execution_count"] as? Int == 2)
            #expect(read.object["error"] == nil)
            let isolated = try await execute(client, base, b, "x")
            #expect((isolated.object["error"] as? String)?.hasPrefix("NameError") == true, "\(isolated.text)")

            // The context's cwd: relative paths and the working directory.
            let cwd = try await execute(client, base, a, "import os\nprint(os.getcwd(), open('in.txt').read().strip())")
            #expect((cwd.object["logs"] as? [String: Any])?["stdout"] as? String == "/tmp/work data\n", "\(cwd.text)")

            // A matplotlib figure arrives as a PNG, a DataFrame as HTML.
            let figure = try await execute(
                client, base, a, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('ctx')\nplt.show()", timeout: 240)
            let png = (figure.object["results"] as? [[String: Any]] ?? []).compactMap { $0["png"] as? String }.first ?? ""
            let bytes = Data(base64Encoded: png) ?? Data()
            #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "no PNG in \(figure.text.prefix(2000))")
            #expect(bytes.count > 1000)
            let frame = try await execute(
                client, base, a, "import pandas as pd\npd.DataFrame({'name': ['a', 'b'], 'value': [1, 2]})", timeout: 240)
            let html = (frame.object["results"] as? [[String: Any]] ?? []).compactMap { $0["html"] as? String }.first ?? ""
            #expect(html.contains("<table") && html.contains("value"), "no HTML table in \(frame.text.prefix(2000))")
            #expect(texts(frame).first?.contains("name") == true, "a DataFrame has a text form too")
            let json = try await execute(client, base, a, "from IPython.display import JSON, display\ndisplay(JSON({'k': [1, 2]}))")
            let jsonResult = (json.object["results"] as? [[String: Any]] ?? []).compactMap { $0["json"] as? [String: Any] }.first
            #expect((jsonResult?["k"] as? [Int]) == [1, 2], "\(json.text)")

            // An exception: `error` names it, the traceback is in stderr; the context lives on.
            let failed = try await execute(client, base, a, "def f():\n    return 1 / 0\nf()")
            #expect(failed.status == 200)
            #expect(failed.object["error"] as? String == "ZeroDivisionError: division by zero", "\(failed.text)")
            let stderr = (failed.object["logs"] as? [String: Any])?["stderr"] as? String ?? ""
            #expect(stderr.contains("ZeroDivisionError") && stderr.contains("return 1 / 0"), "\(failed.text)")
            #expect(!stderr.contains("\u{1b}["), "no terminal colour codes in the traceback")
            #expect(texts(try await execute(client, base, a, "x")) == ["41"])

            // stream-execute: events in order, then done, then the server closes the stream.
            let events = try await client.events(
                "\(base)/\(a)/stream-execute", method: "POST",
                json: ["code": "import sys, time\nfor i in range(3):\n    print(f'line-{i}', flush=True)\n    time.sleep(0.3)\nprint('oops', file=sys.stderr)\n'end'"],
                timeout: 420)
            let types = events.compactMap { $0["type"] as? String }
            #expect(types.last == "done", "\(events)")
            #expect((events.last?["execution_count"] as? Int ?? 0) > 5, "\(events)")
            let stdout = events.filter { $0["type"] as? String == "stdout" }.compactMap { $0["data"] as? String }.joined()
            #expect(stdout == "line-0\nline-1\nline-2\n", "\(events)")
            #expect(events.filter { $0["type"] as? String == "stdout" }.count >= 3, "chunks arrive as they are printed: \(events)")
            let stderrIndex = types.firstIndex(of: "stderr") ?? -1
            let resultIndex = types.firstIndex(of: "result") ?? -1
            let lastStdout = types.lastIndex(of: "stdout") ?? Int.max
            #expect(lastStdout < stderrIndex && stderrIndex < resultIndex, "order: \(types)")
            #expect((events[safe: resultIndex]?["data"] as? [String: Any])?["text"] as? String == "'end'", "\(events)")
            let streamedError = try await client.events(
                "\(base)/\(a)/stream-execute", method: "POST", json: ["code": "raise ValueError('bad value')"], timeout: 420)
            let streamedStderr = streamedError.filter { $0["type"] as? String == "stderr" }.compactMap { $0["data"] as? String }.joined()
            #expect(streamedStderr.contains("ValueError: bad value"), "\(streamedError)")
            #expect(streamedError.last?["type"] as? String == "done")

            // An execute past its timeout is interrupted; the context is not wedged.
            let started = Date()
            let slow = try await execute(client, base, a, "import time\ntime.sleep(120)", timeout: 3)
            #expect(Date().timeIntervalSince(started) < 60, "interrupted, not waited for")
            #expect((slow.object["error"] as? String)?.hasPrefix("KeyboardInterrupt") == true, "\(slow.text)")
            #expect(texts(try await execute(client, base, a, "x * 2")) == ["82"])

            // list, restart (state gone, same id and cwd), delete.
            let listed = try await longCall(client, "GET", base)
            #expect(Set(listed.array.compactMap { $0["id"] as? String }) == [a, b], "\(listed.text)")
            let restarted = try await longCall(client, "POST", "\(base)/\(a)/restart")
            #expect(restarted.status == 200 && restarted.object["id"] as? String == a, "\(restarted.text)")
            #expect(restarted.object["cwd"] as? String == "/tmp/work")
            let gone = try await execute(client, base, a, "x")
            #expect((gone.object["error"] as? String)?.hasPrefix("NameError") == true, "\(gone.text)")
            #expect(gone.object["execution_count"] as? Int == 1, "a fresh kernel counts from 1")
            #expect(try await client.delete("\(base)/\(b)").status == 204)
            #expect(try await client.get(base).array.compactMap { $0["id"] as? String } == [a])
            let deleted = try await client.post("\(base)/\(b)/execute", ["code": "1"])
            #expect(deleted.status == 404 && deleted.object["error"] as? String == "not_found", "\(deleted.text)")

            // Bad input: clear 4xx.
            let language = try await longCall(client, "POST", base, ["language": "cobol"])
            #expect(language.status == 400 && (language.object["message"] as? String)?.contains("python") == true, "\(language.text)")
            #expect(try await longCall(client, "POST", base, ["language": 3]).status == 400)
            #expect(try await longCall(client, "POST", base, ["language": "python", "cwd": "relative"]).status == 400)
            let missingDir = try await longCall(client, "POST", base, ["language": "python", "cwd": "/nope/missing"])
            #expect(missingDir.status == 400, "\(missingDir.text)")
            #expect(try await client.post("\(base)/ctx_0123456789abcdef/execute", ["code": "1"]).status == 404)
            #expect(try await client.post("\(base)/bogus/execute", ["code": "1"]).status == 404)
            #expect(try await client.post("\(base)/bogus/stream-execute", ["code": "1"]).status == 404)
            #expect(try await client.post("\(base)/ctx_0123456789abcdef/stream-execute", ["code": "1"]).status == 404)
            #expect(try await client.post("\(base)/\(a)/execute", [:]).status == 400)
            #expect(try await client.post("\(base)/\(a)/execute", ["code": "1", "timeout": 0]).status == 400)
            #expect(try await client.post("\(base)/ctx_0123456789abcdef/restart").status == 404)
            #expect(try await client.delete("\(base)/ctx_0123456789abcdef").status == 404)

            // The service behind the contexts is not one of the sandbox's commands.
            let processes = try await client.get("/sandboxes/\(id)/commands")
            #expect(!processes.text.contains("contexts-service"), "\(processes.text)")
        } catch {
            Issue.record("server log: \(server.log().suffix(4000))")
            throw error
        }
    }

    /// A non-streaming execute collects at most `OMNIRUN_CONTEXT_OUTPUT_LIMIT` bytes (64 MiB
    /// by default, as a command; 1 MiB here): past it the answer is a 413 and the server's
    /// memory does not follow the guest's output. The context stays usable.
    @Test func anExecutePrintingPastTheLimitIsRefused() async throws {
        let server = try await TestServer.start(
            name: "context-limit", environment: ["OMNIRUN_CONTEXT_OUTPUT_LIMIT": "\(1 << 20)", "OMNIRUN_IDLE_TIMEOUT": "600"])
        do {
            let client = server.client()
            let id = try await createSandbox(client, ["template": "playground", "timeout": 600])
            let base = "/sandboxes/\(id)/contexts"
            let created = try await longCall(client, "POST", base, ["language": "python"])
            let context = created.object["id"] as? String ?? ""
            #expect(created.status == 200, "\(created.text)")
            let watch = ResourceWatch(pid: server.process.processIdentifier)
            // 320 MB in 8 KB lines (the context stops printing once the server lets go), and a
            // result of 3 MB: both past 1 MiB.
            let flood = try await client.request(
                "POST", "\(base)/\(context)/execute", json: ["code": "for i in range(40000):\n    print('x' * 8000)"], timeout: 420)
            #expect(flood.status == 413, "\(flood.text.prefix(300))")
            #expect((flood.object["message"] as? String)?.contains("1048576") == true, "\(flood.text)")
            let floodReport = await watch.finish(settle: .zero)
            reportFigures("server: context execute printing up to 320 MB (limit 1 MiB)", floodReport, outcome: "413; bounded")
            let resultWatch = ResourceWatch(pid: server.process.processIdentifier)
            let result = try await client.request("POST", "\(base)/\(context)/execute", json: ["code": "'y' * 3_000_000"], timeout: 420)
            #expect(result.status == 413, "\(result.text.prefix(300))")
            let report = await resultWatch.finish()
            reportFigures("server: context execute returning a 3 MB result (limit 1 MiB)", report, outcome: "413; bounded")
            // What the server holds does not follow what the guest prints (copies of a line,
            // HTTP/2 windows and the allocator's slack are all it keeps).
            #expect(floodReport.residentMiB.peak - floodReport.residentMiB.before < 128, "\(floodReport)")
            #expect(report.residentMiB.peak - floodReport.residentMiB.before < 128, "\(report)")
            // Under the limit, the same context answers as before.
            let small = try await execute(client, base, context, "print('fits')\n41 + 1", timeout: 240)
            #expect((small.object["logs"] as? [String: Any])?["stdout"] as? String == "fits\n", "\(small.text)")
            #expect(texts(small) == ["42"], "\(small.text)")
            _ = try await client.delete("/sandboxes/\(id)")
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test func aTemplateWithoutContextsAnswersAClear400() async throws {
        let (_, client) = try await SharedServer.client("contexts-none")
        // Only templates built without python3-ipykernel lack contexts; the test service's
        // templates all have them, so a sandbox whose service is removed stands in.
        let id = try await createSandbox(client)
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        let removed = try await client.post(
            "/sandboxes/\(id)/commands", ["command": "rm /usr/local/lib/omnirun/contexts-service", "user": "root"])
        #expect(removed.object["exit_code"] as? Int == 0, "\(removed.text)")
        let reply = try await longCall(client, "POST", "/sandboxes/\(id)/contexts", ["language": "python"])
        #expect(reply.status == 400 && (reply.object["message"] as? String)?.contains("no code contexts") == true, "\(reply.text)")
    }

    func execute(
        _ client: HTTPTestClient, _ base: String, _ context: String, _ code: String, timeout: Int? = nil
    ) async throws -> HTTPTestClient.Reply {
        var body: [String: Any] = ["code": code]
        if let timeout { body["timeout"] = timeout }
        let reply = try await client.request("POST", "\(base)/\(context)/execute", json: body, timeout: 420)
        #expect(reply.status == 200, "\(code): \(reply.text)")
        return reply
    }

    /// Starting a kernel takes seconds alone and minutes when the whole suite shares the host.
    func longCall(_ client: HTTPTestClient, _ method: String, _ path: String, _ json: Any? = nil) async throws -> HTTPTestClient.Reply {
        try await client.request(method, path, json: json ?? (method == "GET" ? nil : [:]), timeout: 420)
    }

    func texts(_ reply: HTTPTestClient.Reply) -> [String] {
        (reply.object["results"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
