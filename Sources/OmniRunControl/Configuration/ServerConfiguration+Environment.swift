import Foundation
import LLMUpstreams
import OmniRunError
import SMTPClient

extension ServerConfiguration {
    /// Reads the settings of accounts, mail, vault and the LLM proxy from the environment
    /// (and the LLM configuration file). Each variable is documented where it is used.
    public mutating func applyAccountEnvironment(_ env: [String: String]) throws {
        llm = try LLMConfiguration.load(dataDirectory: dataDirectory, environment: env)
        llmKeys = Dictionary(
            llm.upstreams.compactMap { upstream in upstream.apiKeyEnv.flatMap { name in env[name].map { (name, $0) } } },
            uniquingKeysWith: { first, _ in first })
        if let email = env["OMNIRUN_OWNER_EMAIL"], !email.isEmpty { ownerEmail = email }
        try preview.apply(env)
        try limits.apply(env)
        if let path = env["OMNIRUN_MASTER_KEY_FILE"], !path.isEmpty { masterKeyPath = path }
        if let path = env["OMNIRUN_XTERM_DIR"], !path.isEmpty { xtermDirectory = path }
        if let path = env["OMNIRUN_CONSOLE_DIR"] {
            // An empty value turns the console off.
            consoleDirectory = path.isEmpty ? nil : path
        }
        if let sender = env["OMNIRUN_MAIL_FROM"], !sender.isEmpty { mailSender = sender }
        smtp = try Self.smtp(env, sender: mailSender)
        if let value = env["OMNIRUN_SIGNIN_CODE_TTL"].flatMap({ Int64($0) }), value > 0 { signIn.codeLifetimeSeconds = value }
        if let value = env["OMNIRUN_SIGNIN_EMAIL_LIMIT"].flatMap({ Int($0) }), value > 0 { signIn.perEmailLimit = value }
        if let value = env["OMNIRUN_SIGNIN_IP_LIMIT"].flatMap({ Int($0) }), value > 0 { signIn.perAddressLimit = value }
        if let value = env["OMNIRUN_SESSION_TTL"].flatMap({ Int64($0) }), value >= 0 { signIn.sessionLifetimeSeconds = value }
        try applyTenancyEnvironment(env)
    }

    /// `OMNIRUN_SMTP_HOST` (unset: no SMTP), `OMNIRUN_SMTP_PORT` (default by security: 587,
    /// 465 or 25), `OMNIRUN_SMTP_SECURITY` (`starttls` default, `tls`, `none`),
    /// `OMNIRUN_SMTP_USERNAME`, `OMNIRUN_SMTP_PASSWORD` or `OMNIRUN_SMTP_PASSWORD_FILE`,
    /// `OMNIRUN_SMTP_FROM` (default `OMNIRUN_MAIL_FROM`), `OMNIRUN_SMTP_CA_FILE` (PEM CAs to
    /// trust), `OMNIRUN_SMTP_VERIFY=0` (do not check the certificate; test relays only),
    /// `OMNIRUN_SMTP_TIMEOUT` (seconds, default 30).
    package static func smtp(_ env: [String: String], sender: String) throws -> SMTPConfiguration? {
        guard let host = env["OMNIRUN_SMTP_HOST"], !host.isEmpty else { return nil }
        let securityText = env["OMNIRUN_SMTP_SECURITY"].flatMap { $0.isEmpty ? nil : $0.lowercased() } ?? "starttls"
        guard let security = SMTPConfiguration.Security(rawValue: securityText) else {
            throw OmniRunError(.invalidArgument, "OMNIRUN_SMTP_SECURITY must be starttls, tls or none")
        }
        let defaultPort = security == .tls ? 465 : security == .startTLS ? 587 : 25
        let port = env["OMNIRUN_SMTP_PORT"].flatMap { Int($0) } ?? defaultPort
        var password = env["OMNIRUN_SMTP_PASSWORD"]
        if let file = env["OMNIRUN_SMTP_PASSWORD_FILE"], !file.isEmpty {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw OmniRunError(.invalidArgument, "cannot read OMNIRUN_SMTP_PASSWORD_FILE \(file)")
            }
            password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        var smtp = SMTPConfiguration(
            host: host, port: port, security: security, sender: env["OMNIRUN_SMTP_FROM"].flatMap { $0.isEmpty ? nil : $0 } ?? sender,
            username: env["OMNIRUN_SMTP_USERNAME"].flatMap { $0.isEmpty ? nil : $0 }, password: password)
        smtp.trustRootsPath = env["OMNIRUN_SMTP_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        smtp.verifyCertificate = env["OMNIRUN_SMTP_VERIFY"] != "0"
        if let seconds = env["OMNIRUN_SMTP_TIMEOUT"].flatMap({ Double($0) }), seconds > 0 {
            smtp.timeout = .milliseconds(Int64(seconds * 1000))
        }
        return smtp
    }
}
