import AgentProtocol
import CAgentSupport
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The guest agent: PID 1 of every sandbox VM.
public enum GuestAgent {
    /// What `boot` established for `serve`.
    public struct BootState: Sendable {
        let isInit: Bool
        let bootMillis: Int64
    }

    /// The machine's own set-up, done synchronously before any thread pool exists:
    /// the concurrency runtime's thread monitor reads /proc, which is briefly absent
    /// while PID 1 mounts it and switches root.
    public static func boot() -> BootState {
        let isInit = getpid() == 1
        if isInit { omr_init_signals() }
        let bootMillis = Clock.monotonicMillis()
        if isInit {
            // /proc is not mounted yet: the log level is read after the mounts.
            let early = Logger(label: "omnirun.agent")
            do {
                try GuestInit(logger: early).run()
            } catch {
                early.critical("boot failed", metadata: ["error": "\(error)"])
                powerOff()
            }
        }
        let level = (isInit ? commandLineValue("omnirun.log") : nil).flatMap { Logger.Level(rawValue: $0) } ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return BootState(isInit: isInit, bootMillis: bootMillis)
    }

    /// Makes NIO's event loop the executor of every task, before any task exists. The
    /// guest has one vCPU: with separate executor and event-loop threads every await
    /// between a handler and its channel was a thread switch, which under emulation
    /// costs more than the work around it.
    public static func runTasksOnTheEventLoop() {
        if !NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() {
            Logger(label: "omnirun.agent").warning("tasks keep their own executor (it was in use already)")
        }
    }

    public static func serve(arguments: [String], boot: BootState) async {
        let isInit = boot.isInit
        let bootMillis = boot.bootMillis
        let logger = Logger(label: "omnirun.agent")

        var devicePath: String? = nil
        if let index = arguments.firstIndex(of: "--device"), index + 1 < arguments.count {
            devicePath = arguments[index + 1]
        }
        if devicePath == nil {
            let deadline = Clock.monotonicMillis() + 10_000
            while devicePath == nil, Clock.monotonicMillis() < deadline {
                devicePath = AgentServer.findPort(named: AgentAPI.portName)
                if devicePath == nil { usleep(2000) }
            }
        }
        guard let devicePath else {
            logger.critical("no virtio-serial port named \(AgentAPI.portName)")
            if isInit { powerOff() }
            return
        }

        let group = MultiThreadedEventLoopGroup.singleton
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let reaper = Reaper()
        let table = ProcessTable(logger: logger)
        reaper.start(table: table, logger: logger)
        let identity = SandboxIdentity(ownsMachine: isInit, logger: logger)
        let files = FileService(pool: pool, identity: identity)
        let launcher = ProcessLauncher(table: table, identity: identity, reaper: reaper, group: group, logger: logger)
        let gateway = HostGateway(logger: logger)
        Task { await gateway.listen(group: group) }
        let router = Router(
            table: table, launcher: launcher, files: files, identity: identity, gateway: gateway,
            desktop: DesktopService(pool: pool, launcher: launcher, table: table, logger: logger),
            contexts: ContextsService(launcher: launcher, table: table, identity: identity, group: group, logger: logger),
            group: group, logger: logger,
            bootMillis: bootMillis,
            onShutdown: {
                guard isInit else { return }
                await table.killAll(signal: SIGTERM)
                try? await Task.sleep(for: .milliseconds(300))
                await table.killAll(signal: SIGKILL)
                powerOff()
            })
        logger.info("agent ready", metadata: ["device": "\(devicePath)", "api": "\(AgentAPI.version)"])
        await AgentServer(devicePath: devicePath, router: router, group: group, logger: logger).run()
    }

    /// Flushes the disk and stops the machine (QEMU runs with -no-reboot, so a
    /// reboot ends it).
    static func powerOff() -> Never {
        sync()
        mount(nil, "/", nil, UInt(MS_REMOUNT | MS_RDONLY), nil)
        sync()
        _ = omr_reboot_now()
        while true { pause() }
    }
}
