import Foundation
import OmniRunError
import Testing

@testable import TemplateBuilder

@Suite("Dockerfile parsing and build plans")
struct DockerfileTests {
    @Test func theSupportedInstructions() throws {
        let text = """
            # syntax comment
            ARG BASE=playground
            FROM ${BASE}
            ARG GREETING=hello
            ENV APP_HOME=/srv/app LANG=C.UTF-8
            ENV LEGACY the rest of the line
            WORKDIR $APP_HOME
            COPY --chown=user:user app.py requirements.txt ./
            ADD data.tar /srv/data/
            RUN echo "$GREETING" > greeting.txt && \\
                chmod 644 greeting.txt
            RUN ["python3", "-c", "print(1)"]
            USER user
            """
        let file = try Dockerfile.parse(text)
        #expect(file.from == "playground")
        #expect(file.instructions.count == 9)
        #expect(file.instructions[0].kind == .arg(name: "GREETING", defaultValue: "hello"))
        #expect(file.instructions[1].kind == .env([("APP_HOME", "/srv/app"), ("LANG", "C.UTF-8")]))
        #expect(file.instructions[2].kind == .env([("LEGACY", "the rest of the line")]))
        #expect(file.instructions[3].kind == .workdir("$APP_HOME"))
        #expect(
            file.instructions[4].kind
                == .copy(sources: ["app.py", "requirements.txt"], destination: "./", chown: "user:user", chmod: nil, isAdd: false))
        #expect(file.instructions[5].kind == .copy(sources: ["data.tar"], destination: "/srv/data/", chown: nil, chmod: nil, isAdd: true))
        #expect(file.instructions[6].kind == .run(shell: "echo \"$GREETING\" > greeting.txt &&  chmod 644 greeting.txt", argv: nil))
        #expect(file.instructions[6].line == 10)
        #expect(file.instructions[7].kind == .run(shell: nil, argv: ["python3", "-c", "print(1)"]))
        #expect(file.instructions[8].kind == .user("user"))
    }

    @Test func unsupportedInstructionsAreNamedWithTheirLine() throws {
        for (text, needle) in [
            ("FROM playground\nRUN true\nONBUILD RUN x\n", "line 3: unsupported instruction ONBUILD"),
            ("FROM playground AS build\nFROM debian:bookworm\n", "line 2: a second FROM"),
            ("RUN true\n", "line 1: RUN before FROM"),
            ("FROM playground\nCOPY https://example.com/x.tar /x\n", "line 2: COPY takes no URL"),
            ("FROM playground\nADD https://a.example/x https://b.example/y /x/\n", "line 2: ADD downloads one"),
            ("FROM playground\nADD --from=rust /a /b\n", "line 2: ADD option --from=rust is not supported"),
            ("FROM playground\nRUN echo 'unterminated\nCOPY a\n", "line 3: COPY needs at least one source"),
            ("FROM playground\n\nRUN --mount=type=cache,target=/root/.cache pip install x\n", "line 3: RUN --mount=type=cache is not supported"),
            ("FROM playground\nRUN --mount=type=secret,id=x cat /run/secrets/x\n", "line 2: RUN --mount=type=secret"),
            ("FROM playground\nRUN --network=host true\n", "line 2: RUN --network=host is not supported"),
            ("FROM playground\nRUN <<EOF\necho never ends\n", "line 2: the here-document <<EOF has no terminating EOF"),
            ("FROM playground\nSHELL /bin/bash -c\n", "line 2: SHELL takes the JSON form"),
            ("FROM playground\nEXPOSE\n", "line 2: EXPOSE needs a port"),
            ("FROM playground\nCMD []\n", "line 2: CMD [] is empty"),
            ("FROM playground\nHEALTHCHECK --interval=soon CMD true\n", "line 2: HEALTHCHECK --interval takes a duration"),
            ("FROM playground\nHEALTHCHECK --bogus=1 CMD true\n", "line 2: HEALTHCHECK option --bogus=1"),
            ("FROM playground\nHEALTHCHECK curl localhost\n", "line 2: HEALTHCHECK takes [OPTIONS] CMD"),
            ("FROM playground\nCOPY <<EOF /etc/a ./b /c\nx\nEOF\n", "line 2: COPY takes either here-documents or paths"),
            ("# only a comment\n", "no FROM"),
        ] {
            do {
                _ = try Dockerfile.parse(text)
                Issue.record("accepted: \(text)")
            } catch let error as OmniRunError {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains(needle), "\(error.message)")
            }
        }
    }

    @Test func substitution() throws {
        let vars = ["A": "1", "EMPTY": ""]
        #expect(try Dockerfile.substitute("$A-${A}-${B:-two}-${EMPTY:-d}-${A:+set}-${B:+x}-\\$A-$", vars, line: 1) == "1-1-two-d-set--$A-$")
    }

    @Test func layerKeysChainSoOnlyAChangedSuffixIsRebuilt() throws {
        func plan(_ text: String, context: String? = "ctx1", scope: String = "acc_1", args: [String: String] = [:]) throws -> BuildPlan {
            try BuildPlan.make(
                try Dockerfile.parse(text), buildArgs: args, scope: scope, baseKey: "base", growTo: nil, contextHash: context)
        }
        let first = try plan("FROM playground\nRUN a\nCOPY x /x\nENV K=v\nRUN b\n")
        #expect(first.steps.count == 3)
        #expect(first.env == ["K": "v"])
        let editedLast = try plan("FROM playground\nRUN a\nCOPY x /x\nENV K=v\nRUN c\n")
        #expect(editedLast.steps.prefix(2).map(\.key) == first.steps.prefix(2).map(\.key))
        #expect(editedLast.steps[2].key != first.steps[2].key)
        let editedEnv = try plan("FROM playground\nRUN a\nCOPY x /x\nENV K=w\nRUN b\n")
        #expect(editedEnv.steps[2].key != first.steps[2].key)
        #expect(editedEnv.steps[2].env["K"] == "w")
        let otherContext = try plan("FROM playground\nRUN a\nCOPY x /x\nENV K=v\nRUN b\n", context: "ctx2")
        #expect(otherContext.steps[0].key == first.steps[0].key)
        #expect(otherContext.steps[1].key != first.steps[1].key)
        // Layers are never shared between accounts.
        let otherAccount = try plan("FROM playground\nRUN a\nCOPY x /x\nENV K=v\nRUN b\n", scope: "acc_2")
        #expect(otherAccount.steps[0].key != first.steps[0].key)
        let withArg = try plan("FROM playground\nARG V=1\nRUN echo $V\n", args: ["V": "2"])
        #expect(withArg.steps[0].env["V"] == "2")
        #expect(withArg.steps[0].key != (try plan("FROM playground\nARG V=1\nRUN echo $V\n")).steps[0].key)
        #expect(throws: OmniRunError.self) { try plan("FROM playground\nCOPY x /x\n", context: nil) }
        #expect(throws: OmniRunError.self) { try plan("FROM playground\nCOPY ../etc/passwd /x\n") }
    }

    @Test func workdirAndUserShapeTheSteps() throws {
        let plan = try BuildPlan.make(
            try Dockerfile.parse("FROM playground\nWORKDIR /srv\nWORKDIR app\nUSER user\nRUN make\nCOPY a b\n"), buildArgs: [:],
            scope: "s", baseKey: "b", growTo: 4096, contextHash: "c")
        #expect(plan.steps.count == 3)
        if case .growFileSystem = plan.steps[0].action {} else { Issue.record("the disk grows first") }
        #expect(plan.steps[1].workdir == "/srv/app")
        #expect(plan.steps[1].user == "user")
        if case .copy(_, let destination, _, _, _) = plan.steps[2].action { #expect(destination == "/srv/app/b") }
        #expect(plan.workdir == "/srv/app")
        #expect(plan.user == "user")
    }

    @Test func refusalsInThePlanNameTheirLine() throws {
        for (text, needle) in [
            ("FROM playground\nEXPOSE 70000\n", "line 2: EXPOSE 70000"),
            ("FROM playground\nEXPOSE 1-1000\n", "line 2: EXPOSE 1-1000"),
            ("FROM playground\nCOPY --from=rust /usr/*/rustc /x\n", "line 2: COPY --from source '/usr/*/rustc': plain paths only"),
            ("FROM playground\nCOPY --from=rust /usr/../etc/shadow /x\n", "line 2: COPY --from source"),
            ("FROM playground\nCOPY --from=builder /a /b\n", "line 2: COPY --from=builder: not built"),
            ("FROM playground\nCOPY <<A <<B /etc/file\na\nA\nb\nB\n", "line 2: COPY of several here-documents needs a folder"),
            ("FROM playground\nUSER bad\\ name\n", "line 2: USER"),
        ] {
            do {
                _ = try BuildPlan.make(
                    try Dockerfile.parse(text), buildArgs: [:], scope: "s", baseKey: "b", growTo: nil, contextHash: "c",
                    template: { name in
                        guard name == "rust" else { throw OmniRunError(.invalidArgument, "not built") }
                        return ("/images/rust.ext4", "rustkey")
                    })
                Issue.record("accepted: \(text)")
            } catch let error as OmniRunError {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains(needle), "\(error.message)")
            }
        }
    }

    @Test func heredocsBecomeScriptsOrTheirCommandsInput() throws {
        let text = """
            FROM playground
            RUN <<EOF
            set -e
            # a comment inside stays
            echo "one $HOME"
            EOF
            RUN python3 - <<'PY' > /tmp/out.txt && \\
                cat /tmp/out.txt
            print("two")
            PY
            RUN <<-EOT
            \t#!/usr/bin/env python3
            \tprint("three")
            \tEOT
            COPY <<CONF /etc/app.conf
            name=$NAME
            CONF
            COPY <<'RAW' <<OTHER /srv/
            $kept
            RAW
            other
            OTHER
            """
        let file = try Dockerfile.parse(text)
        #expect(file.instructions.count == 5)
        #expect(file.instructions[0].kind == .run(shell: "set -e\n# a comment inside stays\necho \"one $HOME\"\n", argv: nil))
        #expect(file.instructions[0].line == 2)
        #expect(file.instructions[0].text == "RUN <<EOF")
        #expect(
            file.instructions[1].kind
                == .run(shell: "python3 - <<'PY' > /tmp/out.txt &&  cat /tmp/out.txt\nprint(\"two\")\nPY\n", argv: nil))
        #expect(file.instructions[1].line == 7)
        // A here-document that starts with #! runs as a program of its own (leading tabs gone for <<-).
        guard case .run(nil, let argv?) = file.instructions[2].kind else {
            Issue.record("a #! here-document is an argument vector")
            return
        }
        #expect(argv.last == "#!/usr/bin/env python3\nprint(\"three\")\n")
        #expect(file.instructions[2].line == 11)
        let plan = try BuildPlan.make(
            file, buildArgs: [:], scope: "s", baseKey: "b", growTo: nil, contextHash: nil)
        #expect(plan.steps.count == 5)
        if case .inline(let files, let destination, _, _) = plan.steps[3].action {
            #expect(files.map(\.name) == ["CONF"])
            #expect(files.first?.content == "name=\n")  // unquoted: substituted ($NAME is unset)
            #expect(destination == "/etc/app.conf")
        } else {
            Issue.record("COPY <<CONF writes a file")
        }
        if case .inline(let files, let destination, _, _) = plan.steps[4].action {
            #expect(files.map(\.content) == ["$kept\n", "other\n"])
            #expect(destination == "/srv/")
        } else {
            Issue.record("COPY <<'RAW' <<OTHER writes two files")
        }
        // `<<<` is a here-string, quoted `<<` is text: neither is a here-document.
        let plain = try Dockerfile.parse("FROM playground\nRUN cat <<< 'x' && echo \"a <<b\"\n")
        #expect(plain.instructions[0].kind == .run(shell: "cat <<< 'x' && echo \"a <<b\"", argv: nil))
    }

    @Test func shellPathExposeCommandsAndHealthcheck() throws {
        let text = """
            FROM playground
            ENV PATH=/opt/tools/bin:$PATH
            SHELL ["/bin/bash", "-o", "pipefail", "-c"]
            RUN echo "$0" | tee /tmp/shell
            RUN --network=none ["ls", "/"]
            EXPOSE 8000 9000-9001/tcp 53/udp
            ARG PORT=7000
            EXPOSE $PORT
            LABEL org.opencontainers.image.title="x"
            ENTRYPOINT ["python3", "-m", "http.server"]
            CMD ["8000", "--bind", "0.0.0.0"]
            HEALTHCHECK --interval=5s --timeout=3s --retries=3 CMD curl -sf http://127.0.0.1:8000/ || exit 1
            """
        let plan = try BuildPlan.make(
            try Dockerfile.parse(text), buildArgs: [:], scope: "s", baseKey: "b", growTo: nil, contextHash: nil)
        #expect(plan.env["PATH"] == "/opt/tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        #expect(plan.steps.count == 2)
        #expect(plan.steps[0].runArgv == ["/bin/bash", "-o", "pipefail", "-c", "echo \"$0\" | tee /tmp/shell"])
        #expect(plan.steps[0].network)
        #expect(plan.steps[1].runArgv == ["ls", "/"])
        #expect(!plan.steps[1].network)
        #expect(plan.ports == [7000, 8000, 9000, 9001])
        #expect(plan.startCommand == "python3 -m http.server 8000 --bind 0.0.0.0")
        #expect(plan.readyCommand == "/bin/bash -o pipefail -c 'curl -sf http://127.0.0.1:8000/ || exit 1'")
        // A shell-form CMD with the default shell is the command itself; ENTRYPOINT's shell form ignores CMD.
        let shellForm = try BuildPlan.make(
            try Dockerfile.parse("FROM playground\nCMD python3 app.py --name 'a b'\nHEALTHCHECK NONE\n"), buildArgs: [:], scope: "s",
            baseKey: "b", growTo: nil, contextHash: nil)
        #expect(shellForm.startCommand == "python3 app.py --name 'a b'")
        #expect(shellForm.readyCommand == nil)
        let entry = try BuildPlan.make(
            try Dockerfile.parse("FROM playground\nCMD [\"ignored\"]\nENTRYPOINT exec node server.js\n"), buildArgs: [:], scope: "s",
            baseKey: "b", growTo: nil, contextHash: nil)
        #expect(entry.startCommand == "exec node server.js")
        // SHELL is part of a RUN's key; --network=none too; EXPOSE, CMD and LABEL are not.
        let base = try BuildPlan.make(
            try Dockerfile.parse("FROM playground\nRUN make\n"), buildArgs: [:], scope: "s", baseKey: "b", growTo: nil, contextHash: nil)
        let withShell = try BuildPlan.make(
            try Dockerfile.parse("FROM playground\nSHELL [\"/bin/bash\", \"-c\"]\nRUN make\n"), buildArgs: [:], scope: "s", baseKey: "b",
            growTo: nil, contextHash: nil)
        let offline = try BuildPlan.make(
            try Dockerfile.parse("FROM playground\nRUN --network=none make\n"), buildArgs: [:], scope: "s", baseKey: "b", growTo: nil,
            contextHash: nil)
        let configured = try BuildPlan.make(
            try Dockerfile.parse("FROM playground\nEXPOSE 80\nLABEL a=b\nCMD x\nRUN make\n"), buildArgs: [:], scope: "s", baseKey: "b",
            growTo: nil, contextHash: nil)
        #expect(withShell.steps[0].key != base.steps[0].key)
        #expect(offline.steps[0].key != base.steps[0].key)
        #expect(configured.steps[0].key == base.steps[0].key)
        // --no-cache: a build's own keys, none found in the cache.
        let salted = try BuildPlan.make(
            try Dockerfile.parse("FROM playground\nRUN make\n"), buildArgs: [:], scope: "s", baseKey: "b", growTo: nil, contextHash: nil,
            salt: "bld_1")
        #expect(salted.steps[0].key != base.steps[0].key)
    }

    @Test func copyFromAndDownloads() throws {
        let plan = try BuildPlan.make(
            try Dockerfile.parse(
                "FROM playground\nWORKDIR /app\nCOPY --from=javascript --chown=user:user /usr/local/bin/node ./bin/\nADD https://example.com/a/file.tgz?x=1 /downloads/\n"
            ),
            buildArgs: [:], scope: "s", baseKey: "b", growTo: nil, contextHash: nil,
            template: { name in (name == "javascript" ? "/cache/rootfs/javascript.ext4" : "", "jskey") })
        #expect(plan.steps.count == 2)
        if case .copyFrom(let template, let image, let sources, let destination, let chown, _) = plan.steps[0].action {
            #expect(template == "javascript")
            #expect(image == "/cache/rootfs/javascript.ext4")
            #expect(sources == ["/usr/local/bin/node"])
            #expect(destination == "/app/bin/")
            #expect(chown == "user:user")
        } else {
            Issue.record("COPY --from is a copy out of the template's image")
        }
        if case .download(let url, let destination, _, _) = plan.steps[1].action {
            #expect(url == "https://example.com/a/file.tgz?x=1")
            #expect(destination == "/downloads/")
        } else {
            Issue.record("ADD <url> downloads")
        }
        // The source template's image is part of the key.
        let other = try BuildPlan.make(
            try Dockerfile.parse("FROM playground\nWORKDIR /app\nCOPY --from=javascript --chown=user:user /usr/local/bin/node ./bin/\n"),
            buildArgs: [:], scope: "s", baseKey: "b", growTo: nil, contextHash: nil, template: { _ in ("/x", "newkey") })
        #expect(other.steps[0].key != plan.steps[0].key)
        #expect(ImageFiles.normalize("/usr/lib/../bin/./node") == "/usr/bin/node")
        #expect(ImageFiles.normalize("/../../etc") == "/etc")
    }
}
