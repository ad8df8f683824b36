import Testing

@testable import OmniCLI

/// Options before the command (`omni --json sandbox list`, as the public CLI takes them)
/// are moved after the command's words, never past a `--` (after it, words are the user's).
@Suite struct GlobalOptionsTests {
    @Test func optionsBeforeTheCommandMoveAfterIt() {
        #expect(GlobalOptions.hoisted(["--request-timeout", "500", "--json", "sandbox", "list"])
            == ["sandbox", "list", "--request-timeout", "500", "--json"])
        #expect(GlobalOptions.hoisted(["--api-url=http://x", "auth", "status"]) == ["auth", "status", "--api-url=http://x"])
    }

    @Test func theyStopBeforeTheTerminator() {
        #expect(GlobalOptions.hoisted(["--json", "command", "run", "sb_1", "--", "echo", "--json"])
            == ["command", "run", "sb_1", "--json", "--", "echo", "--json"])
    }

    @Test func otherArgumentsAreLeftAlone() {
        let plain = ["sandbox", "exec", "sb_1", "--", "--request-timeout", "1"]
        #expect(GlobalOptions.hoisted(plain) == plain)
        #expect(GlobalOptions.hoisted([]) == [])
        // A valued option without its value is left for the parser to report.
        #expect(GlobalOptions.hoisted(["--api-key"]) == ["--api-key"])
    }
}
