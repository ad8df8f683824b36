import ArgumentParser
import NIOHTTP1

/// `omni`: the OmniRun command-line client (sandboxes, files, terminal, LLM proxy, vault, templates).
public struct Omni: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "omni",
        abstract: "OmniRun from the command line: sandboxes, files, a terminal, the LLM proxy, the vault and templates.",
        discussion: """
            Sign in once (`omni auth login` or `omni auth init --api-key KEY`); the URL and key are kept in \
            ~/.config/omnirun/credentials.json (mode 0600; $OMNI_CONFIG_DIR moves it). --api-url/--api-key or \
            OMNIRUN_API_URL/OMNIRUN_API_KEY override it. Every command takes --json for scripts.

            Exit codes: 0 success; 1 failure; 3 not found; 4 not signed in or key refused; 5 a limit \
            (429, or 402 for the LLM spend cap); 6 not available on this server yet (501); 7 the server or a \
            sandbox failed (5xx); 8 the server refused the input (400/409/413); 64 bad usage. \
            `omni sandbox exec` exits with the command's own exit code.
            """,
        version: "0.1.0",
        subcommands: [Auth.self, SandboxCommand.self, Shell.self, Files.self, LLMCommand.self, Vault.self, Template.self]
    )

    public init() {}
}

struct Auth: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign in (email code, or an API key) and see who you are.",
        subcommands: [AuthLogin.self, AuthInit.self, AuthStatus.self, AuthLogout.self])
}

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox", abstract: "Create, list, inspect, run commands in and kill sandboxes.",
        subcommands: [SandboxCreate.self, SandboxList.self, SandboxInfo.self, SandboxKill.self, SandboxExec.self, SandboxOpen.self])
}

struct Files: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy files into and out of a sandbox, and list its folders.", subcommands: [FilesPut.self, FilesGet.self, FilesLs.self])
}

struct LLMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm", abstract: "The LLM proxy: chat (streamed), models, spend.",
        subcommands: [LLMChat.self, LLMModels.self, LLMUsage.self])
}

struct Vault: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Credentials injected into sandboxes created with --vault-inject.", subcommands: [VaultSet.self, VaultList.self, VaultRm.self])
}

struct Template: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Templates sandboxes are created from.", subcommands: [TemplateList.self, TemplateBuild.self])
}
