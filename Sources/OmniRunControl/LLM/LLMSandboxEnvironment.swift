import AgentProtocol

/// The variables that point the programs in a sandbox at the LLM proxy through the host
/// gateway (`http://127.0.0.1:18080` in the guest, no network device needed), so that
/// every token is charged to the sandbox's owner: OmniRun's own names, OpenAI's SDKs and
/// tools (`OPENAI_BASE_URL`, `OPENAI_API_KEY`), and Anthropic's SDKs and Claude Code
/// (`ANTHROPIC_BASE_URL`, `ANTHROPIC_AUTH_TOKEN`). A sandbox whose own variables (`envs`
/// or the vault) bring a vendor's key or address keeps that vendor's settings: its
/// programs then call the vendor directly, which needs `internet: true`.
package enum LLMSandboxEnvironment {
    /// The key programs in a sandbox present; the gateway signs them in as the owner anyway.
    package static let sandboxKey = "omnirun-sandbox"

    /// Variables that mean "my own Anthropic account" (a key, a token, another endpoint or cloud).
    package static let ownAnthropic = [
        "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_USE_VERTEX",
    ]

    package static func variables(userProvided: [String: String]) -> [String: String] {
        let root = "http://\(AgentAPI.HostGateway.host):\(AgentAPI.HostGateway.port)/llm"
        var env = ["OMNIRUN_LLM_BASE_URL": root + "/v1", "OMNIRUN_LLM_API_KEY": sandboxKey]
        if userProvided["OPENAI_API_KEY"] == nil, userProvided["OPENAI_BASE_URL"] == nil {
            env["OPENAI_BASE_URL"] = root + "/v1"
            env["OPENAI_API_KEY"] = sandboxKey
        }
        // Anthropic's clients add `/v1/messages` to the base URL themselves.
        if !ownAnthropic.contains(where: { userProvided[$0] != nil }) {
            env["ANTHROPIC_BASE_URL"] = root
            env["ANTHROPIC_AUTH_TOKEN"] = sandboxKey
        }
        return env
    }
}
