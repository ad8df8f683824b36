import Foundation
import Testing
import TestSupport

/// The Dockerfile instructions users expect beyond RUN/COPY/ENV: here-documents, SHELL,
/// `ENV PATH`, `COPY --from` a built-in template, `.dockerignore`, and EXPOSE, CMD and
/// HEALTHCHECK becoming the template's ports, start command and ready check; the build's
/// progress as events.
extension CustomTemplateTests {
    static let features = """
        # syntax=docker/dockerfile:1
        FROM playground
        LABEL org.opencontainers.image.title="features"
        SHELL ["/bin/bash", "-o", "pipefail", "-c"]
        ENV PATH=/opt/tools/bin:$PATH
        COPY --from=javascript /usr/local/bin/node /opt/tools/bin/node22
        RUN <<EOF
        set -e
        mkdir -p /srv/site
        # a comment inside a here-document is part of the script
        echo "<h1>from a here-document</h1>" > /srv/site/index.html
        echo "shell=$0" > /srv/shell.txt
        EOF
        COPY --chmod=755 <<'EOF' /opt/tools/bin/greet
        #!/bin/sh
        echo "hello $1 from $(basename "$0")"
        EOF
        COPY . /srv/context/
        WORKDIR /srv/site
        EXPOSE 8000
        CMD ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"]
        HEALTHCHECK --interval=2s --retries=3 CMD curl -sf http://127.0.0.1:8000/ >/dev/null
        """

    @Test func hereDocumentsCopyFromDockerignoreAndCmdHealthcheckExpose() async throws {
        let (_, client) = try await Self.client("features")
        let name = "features-\(UUID().uuidString.prefix(6).lowercased())"
        let context = try Self.tar([
            ".dockerignore": "# not in the image\n*.env\nnode_modules\nlogs/\n!logs/keep.log\n",
            "keep.txt": "kept\n",
            "secret.env": "TOKEN=1\n",
            "node_modules/dep/index.js": "module.exports = 1\n",
            "logs/a.log": "a\n",
            "logs/keep.log": "keep\n",
        ])
        // No startCmd or readyCmd: CMD and HEALTHCHECK are the template's.
        let built = try await Self.build(
            client, name: name, dockerfile: Self.features, settings: ["startCmd": NSNull(), "readyCmd": NSNull()], context: context)
        let log = Self.logs(built)
        #expect(built["status"] as? String == "ready", "\(built["error"] ?? "")\n\(log.joined(separator: "\n"))")
        #expect(log.contains("step 1/4 (line 6): COPY --from=javascript /usr/local/bin/node /opt/tools/bin/node22"))
        #expect(log.contains("step 2/4 (line 7): RUN <<EOF"))
        #expect(log.contains("start command (from CMD/ENTRYPOINT): python3 -m http.server 8000 --bind 127.0.0.1"))
        #expect(log.contains("ready check (from HEALTHCHECK): /bin/bash -o pipefail -c 'curl -sf http://127.0.0.1:8000/ >/dev/null'"))

        let info = try await client.get("/templates/\(name)")
        #expect(info.object["ports"] as? [Int] == [8000], "\(info.text)")
        #expect(info.object["startCmd"] as? String == "python3 -m http.server 8000 --bind 127.0.0.1")
        #expect((info.object["readyCmd"] as? String ?? "").contains("curl -sf http://127.0.0.1:8000/"))

        // The build's progress as events: each step started and done, with its line, command and time.
        let events = try await client.events("/templates/\(name)/builds/\(built["buildID"] as? String ?? "")")
        let steps = events.filter { $0["type"] as? String == "step" }
        #expect(steps.filter { $0["stepStatus"] as? String == "running" }.count == 4, "\(steps)")
        let done = steps.filter { $0["stepStatus"] as? String == "done" }
        #expect(done.count == 4)
        #expect(done.allSatisfy { ($0["elapsedSeconds"] as? Double ?? 0) > 0 && $0["total"] as? Int == 4 })
        #expect(steps.first?["dockerfileLine"] as? Int == 6)
        #expect(steps.first?["command"] as? String == "COPY --from=javascript /usr/local/bin/node /opt/tools/bin/node22")
        #expect(steps.first?["line"] as? String == "step 1/4 (line 6): COPY --from=javascript /usr/local/bin/node /opt/tools/bin/node22")
        let polled = try await client.get("/templates/\(name)/builds/\(built["buildID"] as? String ?? "")")
        #expect((polled.object["steps"] as? [[String: Any]])?.map { $0["status"] as? String } == ["done", "done", "done", "done"])

        let id = try await createSandbox(client, ["template": name, "timeout": 300])
        let check = """
            curl -s http://127.0.0.1:8000/index.html; pwd; cat /srv/shell.txt; node22 -p 'process.versions.node.split(".")[0]'; \
            greet you; stat -c '%a' /opt/tools/bin/greet; cd /srv/context && find . -type f | sort
            """
        let run = try await client.post("/sandboxes/\(id)/commands", ["command": check, "timeout": 120])
        #expect(run.object["exit_code"] as? Int == 0, "\(run.text)")
        #expect(
            run.object["stdout"] as? String
                == "<h1>from a here-document</h1>\n/srv/site\nshell=/bin/bash\n22\nhello you from greet\n755\n./.dockerignore\n./keep.txt\n./logs/keep.log\n",
            "\(run.text)")
        #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        #expect(try await client.delete("/templates/\(name)").status == 204)

        // Refused at once, with the line: a cache mount, a template that is not built-in.
        for (dockerfile, needle) in [
            ("FROM playground\nRUN --mount=type=cache,target=/root/.cache pip install six\n", "line 2: RUN --mount=type=cache is not supported"),
            ("FROM playground\n\nCOPY --from=\(name) /etc/hostname /x\n", "line 3: COPY --from=\(name)"),
        ] {
            let reply = try await client.multipart("/templates", fields: [("dockerfile", dockerfile), ("settings", try Self.settings("refused"))])
            #expect(reply.status == 400, "\(reply.text)")
            #expect((reply.object["message"] as? String ?? "").contains(needle), "\(reply.text)")
        }
    }
}
