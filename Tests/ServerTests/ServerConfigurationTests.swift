import Testing

@testable import OmniRunControl
@testable import OmniRunServer

/// The server's configuration is read in one place: the command line wins over the
/// environment, the environment over the defaults, and no value can trap.
@Suite("Server configuration")
struct ServerConfigurationTests {
    @Test func theCommandLineWinsOverTheEnvironmentWhichWinsOverDefaults() throws {
        let env = [
            "OMNIRUN_HOST": "0.0.0.0", "OMNIRUN_PORT": "9000", "OMNIRUN_IDLE_TIMEOUT": "60", "OMNIRUN_NODE_ID": "node-7",
            "OMNIRUN_OWNER_EMAIL": "ops@example.com", "OMNIRUN_TEMPLATES_DIR": "/srv/templates",
        ]
        let configuration = try ServerConfiguration.load(
            environment: env, dataDirectory: "/tmp/omnirun-config-test", arguments: .init(port: 8443))
        #expect(configuration.host == "0.0.0.0" && configuration.port == 8443 && configuration.idleTimeoutSeconds == 60)
        #expect(configuration.nodeID == "node-7" && configuration.ownerEmail == "ops@example.com")
        #expect(configuration.builtInTemplates.directory == "/srv/templates")
        let defaults = try ServerConfiguration.load(environment: [:], dataDirectory: "/tmp/omnirun-config-test", arguments: .init())
        #expect(defaults.host == "127.0.0.1" && defaults.port == 8080 && defaults.ownerEmail == "owner@localhost")
    }

    @Test func extremeValuesAreClampedOrRefusedNotTrapped() throws {
        for value in ["inf", "1e300", "nan", "-5", "x"] {
            _ = try ServerConfiguration.load(
                environment: ["OMNIRUN_METRICS_INTERVAL": value, "OMNIRUN_PORT": "99999999999999999999999"],
                dataDirectory: "/tmp/omnirun-config-test", arguments: .init())
        }
        let day = try ServerConfiguration.load(
            environment: ["OMNIRUN_METRICS_INTERVAL": "inf"], dataDirectory: "/tmp/omnirun-config-test", arguments: .init())
        #expect(day.metricsInterval == .seconds(86_400))
        #expect(throws: (any Error).self) {
            try ServerConfiguration.load(
                environment: ["OMNIRUN_SMTP_HOST": "mail.example.com", "OMNIRUN_SMTP_SECURITY": "bogus"],
                dataDirectory: "/tmp/omnirun-config-test", arguments: .init())
        }
    }
}
