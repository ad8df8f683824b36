import ArgumentParser
import NIOHTTP1

/// `omni`: the OmniRun command-line client (sandboxes, files, terminal, LLM proxy, vault, templates).
public struct Omni: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "omni",
        abstract: "OmniRun from the command line: sandboxes, files, a terminal, coding agents, the LLM proxy, the vault and templates.",
        discussion: """
            Sign in once (`omni auth login` or `omni auth init --api-key KEY`); the URL and key are kept in \
            ~/.config/omnirun/credentials.json (mode 0600; $OMNI_CONFIG_DIR moves it). --api-url/--api-key or \
            OMNIRUN_API_URL/OMNIRUN_API_KEY override it. Every command takes --json for scripts and \
            --request-timeout MS (the limit on each request that is not a stream). Sandboxes created with \
            --e2ee keep their key pair in the same folder (e2ee/), so every later command on them is encrypted.

            Exit codes: 0 success; 1 failure; 3 not found; 4 not signed in or key refused; 5 a limit \
            (429, or 402 for the LLM spend cap); 6 not available on this server yet (501); 7 the server or a \
            sandbox failed (5xx); 8 the server refused the input (400/409/413); 64 bad usage. \
            `omni sandbox exec` and `omni command run` exit with the command's own exit code.
            """,
        version: "0.2.0",
        subcommands: [
            Auth.self, SandboxCommand.self, CommandGroup.self, Shell.self, Beamup.self, Files.self, DesktopCommand.self, LLMCommand.self,
            Vault.self, Template.self,
        ]
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
        subcommands: [
            SandboxCreate.self, SandboxList.self, SandboxInfo.self, SandboxHistory.self, SandboxKill.self, SandboxExec.self,
            SandboxOpen.self, SandboxExpose.self, SandboxExposures.self, SandboxClose.self, SandboxRefreshExposure.self,
        ])
}

struct CommandGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "command", abstract: "Run commands in a sandbox (in the foreground, streamed or in the background), list and stop them.",
        subcommands: [CommandRun.self, CommandPs.self, CommandKill.self])
}

struct DesktopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "desktop", abstract: "Drive the desktop of a sandbox from the desktop template: screenshots, mouse, keyboard.",
        subcommands: [
            DesktopScreenshot.self, DesktopClick.self, DesktopType.self, DesktopPress.self, DesktopMove.self, DesktopScroll.self,
            DesktopScreen.self, DesktopOpen.self,
        ])
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
