import ArgumentParser
import Logging

/// The `omnirun` command: runs and operates the product on this machine.
public struct OmniRun: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "omnirun",
        abstract: "OmniRun: isolated microVM sandboxes for AI agents.",
        subcommands: [Serve.self, Key.self, Node.self, Run.self, Prepare.self, Template.self, Bench.self, BenchPause.self, BenchFork.self, BenchNetwork.self, BenchNode.self]
    )

    public init() {}
}

/// Options every command that starts machines shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Cache of built guest images (default: $OMNIRUN_CACHE_DIR or ~/.cache/omnirun).")
    var cacheDir: String?

    @Option(help: "Data directory for snapshots and sandboxes (default: $OMNIRUN_DATA_DIR or ~/.local/share/omnirun).")
    var dataDir: String?

    @Option(help: "Accelerator: auto (probe KVM's speed), kvm or tcg.")
    var accel: String = "auto"

    @Option(help: "Log level (trace, debug, info, notice, warning, error).")
    var logLevel: String = "warning"
}
