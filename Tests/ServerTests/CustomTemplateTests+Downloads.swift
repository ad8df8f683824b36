import Foundation
import SandboxRuntime
import Testing
import TestSupport

/// Builds that download: their `RUN` steps reach Debian's mirror and PyPI (the registries
/// this machine reaches; nothing else) through the build machine's network, which is a
/// sandbox's: its own namespace, NAT and firewalls.
extension CustomTemplateTests {
    /// What users write first: apt, pip and npm, each step with retries and generous
    /// timeouts (the mirrors are real). Debian's python3-six (1.16.0) is in the image:
    /// `--ignore-installed` makes pip fetch PyPI's into /usr/local, where sandboxes find it first.
    static let downloads = """
        FROM javascript
        ENV PATH=$PATH:/usr/games
        RUN apt-get -o Acquire::Retries=5 -o Acquire::http::Timeout=60 update && \\
            DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=5 install -y --no-install-recommends cowsay
        RUN pip install --ignore-installed --retries 5 --timeout 60 six==1.16.0
        COPY greet/ /opt/greet/
        RUN cd /opt/greet && npm pack --silent && mkdir -p /opt/app && cd /opt/app && \\
            npm install --no-audit --no-fund /opt/greet/greet-1.0.0.tgz
        """

    /// A folder of files as a tar (paths relative to the folder).
    static func tar(_ files: [String: String]) throws -> Data {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ctx-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (path, text) in files {
            let full = dir + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/tar")
        process.arguments = ["-c", "-C", dir, "--mtime=2026-01-01", "--owner=0", "--group=0", "--sort=name", "."]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return data
    }

    static let greetPackage = [
        "greet/package.json": #"{"name": "greet", "version": "1.0.0", "main": "index.js"}"#,
        "greet/index.js": "module.exports = (name) => `hello ${name} from npm`;\n",
    ]

    /// "template x built in 12.3s" → 12.3
    static func builtIn(_ build: [String: Any]) -> Double? {
        guard let line = logs(build).last(where: { $0.hasPrefix("template ") && $0.contains(" built in ") }) else { return nil }
        return Double(line.split(separator: " ").last?.dropLast() ?? "")
    }

    @Test func aptPipAndNpmStepsDownloadAndTheirSandboxesUseWhatTheyInstalled() async throws {
        let (_, client) = try await Self.client("downloads")
        let name = "downloads-\(UUID().uuidString.prefix(6).lowercased())"
        let context = try Self.tar(Self.greetPackage)
        let noService: [String: Any] = ["startCmd": NSNull(), "readyCmd": NSNull(), "memoryMB": 512]
        let first = try await Self.build(client, name: name, dockerfile: Self.downloads, settings: noService, context: context)
        let firstLog = Self.logs(first)
        #expect(first["status"] as? String == "ready", "\(first["error"] ?? "")\n\(firstLog.joined(separator: "\n"))")
        #expect(firstLog.contains("network of RUN steps: open (what sandboxes with internet access reach)"))
        #expect(firstLog.contains { $0.contains("Setting up cowsay") }, "\(firstLog.joined(separator: "\n"))")
        #expect(firstLog.contains { $0.contains("Successfully installed six-1.16.0") })

        let id = try await createSandbox(client, ["template": name, "timeout": 300])
        let check = """
            cowsay moo | grep -c '< moo >'; python3 -c 'import six; print(six.__version__, six.__file__)'; \
            cd /opt/app && node -e 'console.log(require("greet")("user"))'; cat /etc/resolv.conf | head -1; ls /sys/class/net
            """
        let run = try await client.post("/sandboxes/\(id)/commands", ["command": check, "timeout": 300])
        #expect(run.object["exit_code"] as? Int == 0, "\(run.text)")
        // The build machine's resolver is not left in the image; the sandbox itself is air-gapped.
        #expect(
            run.object["stdout"] as? String
                == "1\n1.16.0 /usr/local/lib/python3.11/dist-packages/six.py\nhello user from npm\n# written by the omnirun agent when the sandbox has a network\nlo\n",
            "\(run.text)")
        #expect(try await client.delete("/sandboxes/\(id)").status == 204)

        // Built again: every step from the cache, no registry reached.
        let again = try await Self.build(client, name: name, dockerfile: Self.downloads, settings: noService, context: context)
        let againLog = Self.logs(again)
        #expect(again["status"] as? String == "ready")
        #expect(againLog.filter { $0.hasSuffix("(cached)") }.count == 4, "\(againLog.joined(separator: "\n"))")
        #expect(!againLog.contains { $0.contains("Setting up") || $0.contains("Collecting") })

        // The last RUN edited: only it runs again.
        let edited = Self.downloads.replacingOccurrences(of: "/opt/greet/greet-1.0.0.tgz", with: "/opt/greet/greet-1.0.0.tgz && echo edited")
        let third = try await Self.build(client, name: name, dockerfile: edited, settings: noService, context: context)
        let thirdLog = Self.logs(third)
        #expect(third["status"] as? String == "ready", "\(third["error"] ?? "")")
        #expect(thirdLog.filter { $0.hasSuffix("(cached)") }.count == 3, "\(thirdLog.joined(separator: "\n"))")
        #expect(thirdLog.contains { $0.hasPrefix("step 4/4 done in") })
        #expect(thirdLog.contains("  edited"))
        print(
            "[figures] the apt/pip/npm Dockerfile: first build \(Self.builtIn(first) ?? -1) s, all cached \(Self.builtIn(again) ?? -1) s, last RUN edited \(Self.builtIn(third) ?? -1) s"
        )
        #expect(try await client.delete("/templates/\(name)").status == 204)
    }

    @Test func aBuildWhoseEgressDeniesEverythingFailsAtItsDownloadStep() async throws {
        let server = try await TestServer.start(name: "template-egress", environment: ["OMNIRUN_BUILD_EGRESS": "none"])
        do {
            let client = server.client()
            let name = "offline-\(UUID().uuidString.prefix(6).lowercased())"
            let dockerfile = """
                FROM playground
                RUN echo before the download > /before.txt
                RUN apt-get -o Acquire::Retries=0 update && apt-get install -y cowsay
                RUN echo never
                """
            let failed = try await Self.build(
                client, name: name, dockerfile: dockerfile, settings: ["startCmd": NSNull(), "readyCmd": NSNull()])
            let log = Self.logs(failed)
            let error = failed["error"] as? String ?? ""
            #expect(failed["status"] as? String == "failed")
            #expect(log.contains("network of RUN steps: none (every connection is refused)"), "\(log.joined(separator: "\n"))")
            #expect(log.contains { $0.hasPrefix("step 1/3 done in") })
            #expect(log.contains { $0.hasPrefix("step 2/3 failed after") })
            #expect(!log.contains { $0.hasPrefix("step 3/3") })
            #expect(error.contains("line 3: RUN apt-get -o Acquire::Retries=0 update && apt-get install -y cowsay"), "\(error)")
            #expect(error.contains("exit code 100"), "\(error)")
            #expect(error.contains("this build's network is none (every connection is refused)"), "\(error)")
            // The build machine's namespace went with it.
            let namespaces = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
            #expect(!namespaces.contains { $0.hasPrefix(HostNetwork.namespacePrefix(tag: server.networkTag)) }, "\(namespaces)")
            #expect(hostProcesses(matching: server.dataDirectory + "/builds/").isEmpty)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
