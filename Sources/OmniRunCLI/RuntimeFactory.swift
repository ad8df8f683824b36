import Foundation
import Logging
import OmniRunError
import QEMUDriver
import SandboxRuntime

enum RuntimeFactory {
    static func bootstrapLogging(_ level: String) {
        let parsed = Logger.Level(rawValue: level) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
    }

    static func makeRuntime(_ options: RuntimeOptions, warmPool: Int, previousRestorePath: Bool = false) throws -> SandboxRuntime {
        try makeRuntime(options, warmPool: .fixed(warmPool), previousRestorePath: previousRestorePath)
    }

    /// `previousRestorePath`: as `OMNIRUN_RESTORE_PATH=previous` (the benchmark's comparison).
    static func makeRuntime(
        _ options: RuntimeOptions, warmPool: WarmPoolPolicy? = nil, previousRestorePath: Bool = false
    ) throws -> SandboxRuntime {
        let logger = Logger(label: "omnirun")
        var qemu = QEMUConfiguration()
        let env = Foundation.ProcessInfo.processInfo.environment
        if let binary = env["OMNIRUN_QEMU"] { qemu.qemuBinary = binary }
        if let binary = env["OMNIRUN_QEMU_IMG"] { qemu.qemuImgBinary = binary }
        if env["OMNIRUN_QEMU_SECCOMP"] == "0" { qemu.seccomp = false }
        if let cpu = env["OMNIRUN_QEMU_CPU"], !cpu.isEmpty { qemu.tcgCPU = cpu }
        if let args = env["OMNIRUN_KERNEL_ARGS"], !args.isEmpty { qemu.extraKernelArguments = args.split(separator: " ").map(String.init) }
        switch env["OMNIRUN_GUEST_ASLR"] {
        case "on", "1": qemu.guestASLR = true
        case "off", "0": qemu.guestASLR = false
        default: break
        }
        let previous = previousRestorePath || env["OMNIRUN_RESTORE_PATH"] == "previous"
        if previous { qemu.restoreShortcuts = false }
        if previous || env["OMNIRUN_QEMU_THP"] == "on" { qemu.transparentHugePages = true }
        if let tb = env["OMNIRUN_TCG_TB_MB"], let mb = Int(tb) { qemu.tcgTranslationCacheMB = mb }
        if let user = env["OMNIRUN_QEMU_USER"] ?? env["OMNIRUN_QEMU_RUNAS"], !user.isEmpty { qemu.user = user }
        if env["OMNIRUN_QEMU_CGROUPS"] == "off" || env["OMNIRUN_QEMU_CGROUPS"] == "0" { qemu.cgroups = false }
        if let mb = env["OMNIRUN_QEMU_MEMORY_OVERHEAD_MB"].flatMap({ Int($0) }), mb >= 0 { qemu.memoryOverheadMB = mb }
        if let pids = env["OMNIRUN_QEMU_PIDS_MAX"].flatMap({ Int($0) }), pids > 0 { qemu.pidsMax = pids }
        if let kb = env["OMNIRUN_CONSOLE_LOG_KB"].flatMap({ Int($0) }), kb > 0 { qemu.consoleLogBytes = min(kb, 1 << 20) << 10 }
        let accel = env["OMNIRUN_ACCEL"] ?? options.accel
        guard let choice = AcceleratorChoice(rawValue: accel) else {
            throw OmniRunError(.invalidArgument, "unknown accelerator '\(accel)' (auto, kvm, tcg)")
        }
        qemu.accelerator = choice
        let driver = try QEMUDriver(configuration: qemu, logger: logger)
        let dataDirectory = options.dataDir ?? SandboxRuntime.Configuration.defaultDataDirectory(environment: env)
        // Custom templates' manifests (written by the server's template builds) beside the built-ins'.
        let catalog = ImageCatalog(
            cacheDirectory: options.cacheDir ?? ImageCatalog.defaultCacheDirectory(environment: env),
            extraManifestDirectories: [dataDirectory + "/templates/manifests"])
        var configuration = SandboxRuntime.Configuration(dataDirectory: dataDirectory)
        configuration.warmPool = try warmPool ?? WarmPoolPolicy(parsing: env["OMNIRUN_WARM_POOL"] ?? "0")
        if let ms = env["OMNIRUN_POOL_REFILL_DELAY_MS"].flatMap({ Int($0) }) { configuration.warmPoolRefillDelay = .milliseconds(ms) }
        if let dir = env["OMNIRUN_SNAPSHOT_DIR"], !dir.isEmpty { configuration.snapshotDirectory = dir }
        if previous { configuration.identityInFirstExchange = false }
        configuration.network = try networkConfiguration(env, dataDirectory: dataDirectory)
        return SandboxRuntime(driver: driver, catalog: catalog, configuration: configuration, logger: logger)
    }

    /// Internet access: `OMNIRUN_NETWORK=off`, `OMNIRUN_NETWORK_DNS=<ip>`,
    /// `OMNIRUN_NETWORK_HOSTS=name=ip[,name=ip...]`,
    /// `OMNIRUN_EGRESS_ALLOW_PRIVATE=cidr[,cidr...]` (docs/networking.md).
    static func networkConfiguration(_ env: [String: String], dataDirectory: String) throws -> HostNetwork.Configuration {
        var network = HostNetwork.Configuration(dataDirectory: dataDirectory)
        network.enabled = env["OMNIRUN_NETWORK"] != "off"
        if let dns = env["OMNIRUN_NETWORK_DNS"], !dns.isEmpty {
            guard (try? EgressPolicy.validatedIPv4(dns)) != nil else {
                throw OmniRunError(.invalidArgument, "OMNIRUN_NETWORK_DNS must be an IPv4 address, not '\(dns)'")
            }
            network.resolver = dns
        }
        network.privateNetworks = try PrivateNetworks(setting: env["OMNIRUN_EGRESS_ALLOW_PRIVATE"] ?? "")
        for entry in (env["OMNIRUN_NETWORK_HOSTS"] ?? "").split(separator: ",") {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, (try? EgressPolicy.validatedIPv4(parts[1])) != nil else {
                throw OmniRunError(.invalidArgument, "OMNIRUN_NETWORK_HOSTS entries are name=ipv4, not '\(entry)'")
            }
            network.nameOverrides[parts[0].lowercased(), default: []].append(parts[1])
        }
        return network
    }
}
