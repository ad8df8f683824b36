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
            ("FROM playground\nRUN true\nCMD [\"python3\"]\n", "line 3: unsupported instruction CMD"),
            ("FROM playground\n\nEXPOSE 8000\n", "line 3: unsupported instruction EXPOSE"),
            ("FROM playground AS build\nFROM debian:bookworm\n", "line 2: a second FROM"),
            ("RUN true\n", "line 1: RUN before FROM"),
            ("FROM playground\nCOPY --from=build /a /b\n", "line 2: COPY --from"),
            ("FROM playground\nADD https://example.com/x.tar /x\n", "line 2: ADD from a URL needs the network"),
            ("FROM playground\nRUN echo 'unterminated\nCOPY a\n", "line 3: COPY needs at least one source"),
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
}
