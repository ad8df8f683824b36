import AgentProtocol
import CAgentSupport
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Starts processes: resolves the user, environment and executable, wires pipes or a
/// terminal, spawns the child in its own session and feeds its output to the table.
struct ProcessLauncher: Sendable {
    let table: ProcessTable
    let identity: SandboxIdentity
    let reaper: Reaper
    let group: any EventLoopGroup
    let logger: Logger

    func start(_ request: ProcessStartRequest) async throws -> Int32 {
        let settings = await identity.snapshot()
        let user = try UserDatabase.lookup(request.user ?? settings.defaultUser)
        // A user the kernel cannot switch to is refused here; `omr_spawn` refuses it again.
        try user.checkSwitchable()
        let argv: [String]
        let display: String
        if let shell = request.shell {
            argv = ["/bin/bash", "-c", shell]
            display = shell
        } else if let given = request.argv, let first = given.first, !first.isEmpty {
            argv = given
            display = given.joined(separator: " ")
        } else {
            throw AgentFailure.badRequest("either shell or a non-empty argv is required")
        }

        var env: [String: String] = [
            "PATH": "\(user.home)/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": user.home, "USER": user.name, "LOGNAME": user.name, "SHELL": user.shell,
            "LANG": "C.UTF-8",
        ]
        if let id = settings.sandboxID { env["OMNIRUN_SANDBOX_ID"] = id }
        for (key, value) in settings.env { env[key] = value }
        for (key, value) in settings.envFileVars { env[key] = value }
        if request.pty != nil { env["TERM"] = "xterm-256color" }
        // In a sandbox with a desktop, programs open their windows on it.
        if env["DISPLAY"] == nil, access(DesktopAPI.displaySocket, F_OK) == 0 { env["DISPLAY"] = DesktopAPI.display }
        for (key, value) in request.env { env[key] = value }
        let cwd = request.cwd ?? settings.defaultCwd ?? user.home
        env["PWD"] = cwd

        let executable = try resolveExecutable(argv[0], path: env["PATH"] ?? "/usr/bin:/bin")

        // Descriptors: (child stdin, stdout, stderr) and the parent's ends.
        var childFDs: [Int32] = []
        var parentOutputs: [(fd: Int32, kind: ProcessEvent.Kind)] = []
        var parentInput: Int32? = nil
        var ptyMaster: Int32? = nil
        var closeInChild: [Int32] = []
        defer { for fd in closeInChild { close(fd) } }

        if let size = request.pty {
            var master: Int32 = -1
            var slave: Int32 = -1
            let rc = omr_openpty(&master, &slave, UInt16(clamping: size.cols), UInt16(clamping: size.rows))
            guard rc == 0 else { throw AgentFailure.errno(rc, "openpty", path: "/dev/ptmx") }
            childFDs = [slave, slave, slave]
            closeInChild = [slave]
            parentOutputs = [(master, .pty)]
            ptyMaster = master
        } else {
            let stdinFD: Int32
            if request.stdin {
                let (r, w) = try makePipe()
                stdinFD = r
                parentInput = w
                closeInChild.append(r)
            } else {
                stdinFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
                closeInChild.append(stdinFD)
            }
            let (outR, outW) = try makePipe()
            let (errR, errW) = try makePipe()
            closeInChild.append(contentsOf: [outW, errW])
            childFDs = [stdinFD, outW, errW]
            parentOutputs = [(outR, .stdout), (errR, .stderr)]
        }

        var spawnError: Int32 = 0
        let spawnedMicros = Clock.monotonicMicros()
        let pid = spawn(
            executable: executable, argv: argv, env: env.map { "\($0.key)=\($0.value)" }, cwd: cwd,
            user: user, fds: childFDs, controllingTTY: ptyMaster != nil, error: &spawnError)
        if pid <= 0 {
            for output in parentOutputs { close(output.fd) }
            if let parentInput { close(parentInput) }
            reaper.childSpawned()
            if spawnError == ENOENT && pid < 0 {
                throw AgentFailure(status: 404, code: AgentErrorCode.notFound, message: "cwd or executable not found: \(cwd), \(executable)")
            }
            throw AgentFailure.errno(spawnError, "start", path: executable)
        }
        reaper.childSpawned()

        let info = GuestProcessInfo(
            pid: pid, tag: request.tag, command: display, user: user.name, cwd: cwd, pty: ptyMaster != nil,
            running: true, exitCode: nil, signal: nil, startedAtMillis: Clock.nowMillis(), endedAtMillis: nil)

        // Wire the parent's ends into NIO channels.
        var inputChannel: (any Channel)? = nil
        var outputStreams: [(AsyncStream<ByteBuffer>, ProcessEvent.Kind)] = []
        let pending = PendingOutput(descriptors: parentOutputs.map(\.fd))
        do {
            if let master = ptyMaster {
                let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream()
                inputChannel = try await NIOPipeBootstrap(group: group)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(OutputForwarder(continuation, pending: pending, descriptor: master))
                        }
                    }
                    .takingOwnershipOfDescriptor(inputOutput: master).get()
                outputStreams.append((stream, .pty))
            } else {
                for output in parentOutputs {
                    let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream()
                    _ = try await NIOPipeBootstrap(group: group)
                        .channelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(
                                    OutputForwarder(continuation, pending: pending, descriptor: output.fd))
                            }
                        }
                        .takingOwnershipOfDescriptor(input: output.fd).get()
                    outputStreams.append((stream, output.kind))
                }
                if let parentInput {
                    inputChannel = try await NIOPipeBootstrap(group: group)
                        .takingOwnershipOfDescriptor(output: parentInput).get()
                }
            }
        } catch {
            kill(-pid, SIGKILL)
            throw AgentFailure(status: 500, code: AgentErrorCode.failed, message: "cannot attach to process output: \(error)")
        }

        let resizeFD = ptyMaster.map { dup($0) }
        try await table.register(info, input: inputChannel, ptyMaster: resizeFD, outputs: outputStreams.count,
            spawnedMicros: spawnedMicros, pendingOutput: pending)
        for (stream, kind) in outputStreams {
            Task { [table] in
                for await buffer in stream {
                    await table.output(pid: pid, kind: kind, bytes: Array(buffer.readableBytesView))
                    pending.recorded(buffer.readableBytes)
                }
                await table.outputClosed(pid: pid)
            }
        }
        if let timeout = request.timeoutMillis, timeout > 0 {
            Task { [table] in
                try? await Task.sleep(for: .milliseconds(timeout))
                await table.timedOut(pid: pid)
            }
        }
        logger.debug("process started", metadata: ["pid": "\(pid)", "user": "\(user.name)"])
        return pid
    }

    private func makePipe() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = fds.withUnsafeMutableBufferPointer { omr_pipe_cloexec($0.baseAddress) }
        guard rc == 0 else { throw AgentFailure.errno(rc, "pipe", path: "") }
        return (fds[0], fds[1])
    }

    private func resolveExecutable(_ name: String, path: String) throws -> String {
        if name.contains("/") { return name }
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw AgentFailure.notFound("executable not found: \(name)")
    }

    private func spawn(
        executable: String, argv: [String], env: [String], cwd: String, user: GuestUser, fds: [Int32],
        controllingTTY: Bool, error: inout Int32
    ) -> Int32 {
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnv { free(p) }
        }
        let groups = user.groups.map { gid_t($0) }
        var err: Int32 = 0
        let pid: Int32 = executable.withCString { cPath in
            cwd.withCString { cCwd in
                cArgv.withUnsafeBufferPointer { argvPtr in
                    cEnv.withUnsafeBufferPointer { envPtr in
                        groups.withUnsafeBufferPointer { groupPtr in
                            var args = omr_spawn_args()
                            args.path = cPath
                            args.argv = UnsafePointer(argvPtr.baseAddress!)
                            args.envp = UnsafePointer(envPtr.baseAddress!)
                            args.cwd = cCwd
                            args.uid = uid_t(user.uid)
                            args.gid = gid_t(user.gid)
                            args.groups = groupPtr.baseAddress
                            args.ngroups = Int32(clamping: groups.count)
                            args.change_identity = getuid() == 0 ? 1 : 0
                            args.stdin_fd = fds[0]
                            args.stdout_fd = fds[1]
                            args.stderr_fd = fds[2]
                            args.controlling_tty = controllingTTY ? 1 : 0
                            return omr_spawn(&args, &err)
                        }
                    }
                }
            }
        }
        error = err
        return pid
    }
}

/// Forwards what a pipe or terminal yields, in order, to an AsyncStream; finishes on
/// end-of-file or error (a terminal reports EIO once its last writer is gone).
final class OutputForwarder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let continuation: AsyncStream<ByteBuffer>.Continuation
    private let pending: PendingOutput?
    private let descriptor: Int32

    init(_ continuation: AsyncStream<ByteBuffer>.Continuation, pending: PendingOutput? = nil, descriptor: Int32 = -1) {
        self.continuation = continuation
        self.pending = pending
        self.descriptor = descriptor
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        pending?.read(buffer.readableBytes)
        continuation.yield(buffer)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pending?.closed(descriptor)
        continuation.finish()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelEvent, case .inputClosed = event as! ChannelEvent {
            continuation.finish()
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        continuation.finish()
        context.close(promise: nil)
    }
}
