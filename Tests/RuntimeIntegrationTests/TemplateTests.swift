import AgentClient
import Foundation
import OmniRunCore
import Testing
import TestSupport

@testable import SandboxRuntime

/// Each built-in template runs its own toolchain in a real sandbox restored from the
/// template's own snapshot. A test runs when its template's image is built (`make
/// templates`; `make test` builds javascript and php) or when `OMNIRUN_TEST_TEMPLATES`
/// asks for it. One template at a time: a first run takes each template's snapshot.
@Suite("Built-in templates", .serialized, .timeLimit(.minutes(20)))
struct TemplateTests {
    /// Ten minutes for a command: compilers under emulation are slow.
    static let long: Int64 = 600_000

    @Test(.enabled(if: TemplateTestGate.shouldTest("javascript")))
    func javascriptRunsAScript() async throws {
        try await TemplateTestGate.withSandbox("javascript") { sandbox in
            try await Self.expectResources(sandbox)
            try await Self.write(sandbox, "/home/user/app.js", "const sum = [1, 2, 3].reduce((a, b) => a + b, 0);\nconsole.log(`sum=${sum} node=${process.versions.node.split('.')[0]}`);\n")
            let result = try await sandbox.run("node app.js", timeoutMillis: Self.long)
            #expect(result.exitCode == 0, "\(result.stderrText)")
            #expect(result.stdoutText == "sum=6 node=22\n")
            try await Self.expectNodeTools(sandbox, major: 22)
        }
    }

    @Test(.enabled(if: TemplateTestGate.shouldTest("node-20")))
    func node20() async throws {
        try await TemplateTestGate.withSandbox("node-20") { sandbox in try await Self.expectNodeTools(sandbox, major: 20) }
    }

    @Test(.enabled(if: TemplateTestGate.shouldTest("node-22")))
    func node22() async throws {
        try await TemplateTestGate.withSandbox("node-22") { sandbox in try await Self.expectNodeTools(sandbox, major: 22) }
    }

    @Test(.enabled(if: TemplateTestGate.shouldTest("node-24")))
    func node24() async throws {
        try await TemplateTestGate.withSandbox("node-24") { sandbox in try await Self.expectNodeTools(sandbox, major: 24) }
    }

    /// Node of that major version, with npm, npx and corepack on the PATH of root and
    /// `user` alike; npm works as `user` (its cache in the user's home) and packs and
    /// installs a local package without a registry.
    static func expectNodeTools(_ sandbox: Sandbox, major: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await expectResources(sandbox, sourceLocation: sourceLocation)
        // The same commands on root's PATH and user's; each of them runs (npm starts slowly
        // under emulation, so as `user` only).
        let paths = ["/usr/local/bin/node", "/usr/local/bin/npm", "/usr/local/bin/npx", "/usr/local/bin/corepack"]
        let asRoot = try await sandbox.run("command -v node npm npx corepack", user: "root")
        #expect(asRoot.stdoutText.split(separator: "\n").map(String.init) == paths, "\(asRoot.stdoutText)", sourceLocation: sourceLocation)
        let tools = try await sandbox.run(
            "node -p 'process.versions.node.split(\".\")[0]' && npm --version && npx --version && corepack --version && command -v node npm npx corepack",
            user: "user", timeoutMillis: long)
        #expect(tools.exitCode == 0, "\(tools.stdoutText)\(tools.stderrText)", sourceLocation: sourceLocation)
        let lines = tools.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.first == "\(major)", "\(tools.stdoutText)", sourceLocation: sourceLocation)
        #expect(lines.count == 8 && lines[1].first?.isNumber == true, "\(tools.stdoutText)", sourceLocation: sourceLocation)
        #expect(Array(lines.suffix(4)) == paths, "\(tools.stdoutText)", sourceLocation: sourceLocation)
        let packed = try await sandbox.run(
            """
            set -e
            mkdir -p /tmp/pkg /tmp/app && cd /tmp/pkg
            printf '{"name":"greet","version":"1.0.0","main":"index.js"}' > package.json
            printf 'module.exports = (n) => "hello " + n;' > index.js
            npm pack --silent >/dev/null && cd /tmp/app && npm install --silent --no-audit --no-fund /tmp/pkg/greet-1.0.0.tgz
            node -e 'console.log(require("greet")("npm"))'
            """, user: "user", timeoutMillis: long)
        #expect(packed.exitCode == 0, "\(packed.stdoutText)\(packed.stderrText)", sourceLocation: sourceLocation)
        #expect(packed.stdoutText.hasSuffix("hello npm\n"), "\(packed.stdoutText)", sourceLocation: sourceLocation)
        // /usr/bin/node (scripts with #!/usr/bin/node) is the same Node.
        let usrBin = try await sandbox.run("/usr/bin/node -p \"process.versions.node.split('.')[0]\"")
        #expect(usrBin.stdoutText == "\(major)\n", "\(usrBin.stdoutText)\(usrBin.stderrText)", sourceLocation: sourceLocation)
    }

    @Test(.enabled(if: TemplateTestGate.shouldTest("typescript")))
    func typescriptCompilesAndRuns() async throws {
        try await TemplateTestGate.withSandbox("typescript") { sandbox in
            try await Self.expectResources(sandbox)
            try await Self.write(
                sandbox, "/home/user/hello.ts",
                "interface Greeting { name: string; times: number }\nconst g: Greeting = { name: 'ts', times: 2 };\nconsole.log(`hello ${g.name} `.repeat(g.times).trim());\n")
            let compiled = try await sandbox.run(
                "tsc --target es2020 hello.ts && node hello.js && node -p 'process.versions.node.split(\".\")[0]'", timeoutMillis: Self.long)
            #expect(compiled.exitCode == 0, "\(compiled.stdoutText)\(compiled.stderrText)")
            #expect(compiled.stdoutText == "hello ts hello ts\n22\n")
            // tsc checks types: a wrong one is an error with its exit code.
            try await Self.write(sandbox, "/home/user/bad.ts", "const n: number = 'not a number';\n")
            let bad = try await sandbox.run("tsc --noEmit bad.ts", timeoutMillis: Self.long)
            #expect(bad.exitCode != 0)
            #expect(bad.stdoutText.contains("TS2322"))
        }
    }

    @Test(.enabled(if: TemplateTestGate.shouldTest("php")))
    func phpRunsAScript() async throws {
        try await TemplateTestGate.withSandbox("php") { sandbox in
            try await Self.expectResources(sandbox)
            try await Self.write(
                sandbox, "/home/user/app.php",
                "<?php\nclass Counter { public function __construct(private int $n = 0) {}\n  public function add(int $k): static { $this->n += $k; return $this; }\n  public function value(): int { return $this->n; } }\necho (new Counter())->add(40)->add(2)->value(), ' ', PHP_MAJOR_VERSION, ' ', mb_strlen('żółw'), \"\\n\";\n")
            let result = try await sandbox.run("php app.php", timeoutMillis: Self.long)
            #expect(result.exitCode == 0, "\(result.stderrText)")
            #expect(result.stdoutText == "42 8 4\n")
        }
    }

    @Test(.enabled(if: TemplateTestGate.shouldTest("sql")))
    func sqlHasPostgresRunningAtOnce() async throws {
        try await TemplateTestGate.withSandbox("sql") { sandbox in
            // The very first command finds the server up: no waiting, no retry.
            let first = try await sandbox.run("psql -c 'select 1'", timeoutMillis: 60_000)
            #expect(first.exitCode == 0, "\(first.stderrText)")
            #expect(first.stdoutText.contains("1 row"))
            try await Self.expectResources(sandbox)
            let work = try await sandbox.run(
                "psql -v ON_ERROR_STOP=1 -qAtc \"create table t (k int primary key, v text); insert into t values (1, 'a'), (2, 'b'); select count(*) || ':' || string_agg(v, ',' order by k) from t; select current_user; select split_part(version(), ' ', 2)\"",
                timeoutMillis: 60_000)
            #expect(work.exitCode == 0, "\(work.stderrText)")
            let lines = work.stdoutText.split(separator: "\n").map(String.init)
            #expect(lines.first == "2:a,b")
            #expect(lines.dropFirst().first == "user")
            #expect(lines.last?.hasPrefix("15.") == true)
            // The server was started before the snapshot, not by this sandbox.
            let started = try await sandbox.run(
                "psql -Atc \"select extract(epoch from now() - pg_postmaster_start_time()) > 0\"", timeoutMillis: 60_000)
            #expect(started.stdoutText == "t\n")
        }
    }

    @Test(.enabled(if: TemplateTestGate.shouldTest("rust")))
    func rustBuildsAndRunsACrate() async throws {
        try await TemplateTestGate.withSandbox("rust") { sandbox in
            try await Self.expectResources(sandbox)
            try await Self.write(
                sandbox, "/home/user/hello/Cargo.toml",
                "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n")
            try await Self.write(
                sandbox, "/home/user/hello/src/main.rs",
                "mod fib;\nfn main() {\n    let v: Vec<u64> = (0..10).map(fib::fib).collect();\n    println!(\"fib {:?}\", v);\n}\n")
            try await Self.write(
                sandbox, "/home/user/hello/src/fib.rs",
                "pub fn fib(n: u64) -> u64 { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\n")
            let result = try await sandbox.run("cd hello && cargo run --offline --quiet", timeoutMillis: Self.long)
            #expect(result.exitCode == 0, "\(result.stderrText)")
            #expect(result.stdoutText == "fib [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]\n")
            let version = try await sandbox.run("rustc --version && cargo --version")
            #expect(version.stdoutText.contains("rustc 1.") && version.stdoutText.contains("cargo 1."))
        }
    }

    @Test(.enabled(if: TemplateTestGate.shouldTest("zig")))
    func zigBuildsAndRunsHelloWorld() async throws {
        try await TemplateTestGate.withSandbox("zig") { sandbox in
            try await Self.expectResources(sandbox)
            try await Self.write(
                sandbox, "/home/user/hello.zig",
                "const std = @import(\"std\");\npub fn main() void {\n    std.debug.print(\"hello from zig {d}\\n\", .{6 * 7});\n}\n")
            let result = try await sandbox.run("zig build-exe hello.zig && ./hello", timeoutMillis: Self.long)
            #expect(result.exitCode == 0, "\(result.stderrText)")
            // std.debug.print writes to stderr
            #expect(result.stderrText == "hello from zig 42\n")
            let version = try await sandbox.run("zig version && python3 -m pip show ziglang | grep -i '^version'")
            #expect(version.stdoutText.hasPrefix("0.17"))
        }
    }

    @Test(.enabled(if: TemplateTestGate.shouldTest("claude-agent")))
    func claudeAgentHasEightGigabytesAndDevTools() async throws {
        try await TemplateTestGate.withSandbox("claude-agent") { sandbox in
            try await Self.expectResources(sandbox)
            let script = """
                set -e
                mkdir repo && cd repo && git init -q && git config user.email a@b.c && git config user.name agent
                printf 'int main(void) { return 0; }\\n' > main.c && printf 'all:\\n\\tcc -O1 -o main main.c\\n' > Makefile
                make -s && ./main && git add -A && git commit -qm first && git log --oneline | wc -l
                rg -l 'int main' . ; python3 -c 'import sys; print(sys.version_info[0])'; node -e 'console.log(process.version.split(".")[0])'
                npm --version >/dev/null && jq -n '1+1'
                """
            let result = try await sandbox.run(script, timeoutMillis: Self.long)
            #expect(result.exitCode == 0, "\(result.stderrText)")
            #expect(result.stdoutText == "1\n./main.c\n3\nv22\n2\n")
            try await Self.expectNodeTools(sandbox, major: 22)
        }
    }

    /// The template's vCPUs and memory reach the machine: the guest sees them.
    static func expectResources(_ sandbox: Sandbox, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let image = try await TestRuntime.runtime().catalog.image(for: sandbox.template)
        let result = try await sandbox.run("nproc; awk '/^MemTotal/ {print $2}' /proc/meminfo; df -m --output=size / | tail -1")
        let values = result.stdoutText.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        #expect(values.count == 3, "\(result.stdoutText)", sourceLocation: sourceLocation)
        guard values.count == 3 else { return }
        #expect(values[0] == image.vcpus, "vCPUs", sourceLocation: sourceLocation)
        // The kernel keeps some memory for itself: MemTotal is a little below the machine's size.
        let memoryMB = values[1] / 1024
        #expect(memoryMB <= image.memoryMB && memoryMB >= image.memoryMB * 85 / 100, "memory \(memoryMB) MiB", sourceLocation: sourceLocation)
        if let disk = image.diskMB {
            #expect(values[2] <= disk && values[2] >= disk * 85 / 100, "disk \(values[2]) MiB", sourceLocation: sourceLocation)
        }
    }

    static func write(_ sandbox: Sandbox, _ path: String, _ text: String) async throws {
        let directory = (path as NSString).deletingLastPathComponent
        _ = try await sandbox.agent.makeDirectory(path: directory)
        _ = try await sandbox.agent.writeFile(path: path, bytes: Array(text.utf8))
    }
}
