import AgentProtocol
import CAgentSupport
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Dispatches each stream of the host connection to the operation it names.
struct Router: Sendable {
    let table: ProcessTable
    let launcher: ProcessLauncher
    let files: FileService
    let identity: SandboxIdentity
    let gateway: HostGateway
    let desktop: DesktopService
    let contexts: ContextsService
    let group: any EventLoopGroup
    let logger: Logger
    let bootMillis: Int64
    let onShutdown: @Sendable () async -> Void

    func handle(_ stream: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await stream.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                guard case .head(let head)? = try await iterator.next() else { return }
                var exchange = Exchange(head: head, outbound: outbound, channel: stream.channel, iterator: iterator)
                do {
                    try await route(&exchange)
                    // Data may still wait for the host's flow-control window: closing now
                    // would reset the stream and cut the body short. The stream closes by
                    // itself once both ends are done.
                    await Self.waitForClose(stream.channel, limit: .seconds(120))
                } catch let failure as AgentFailure {
                    await exchange.drainBody()
                    try await exchange.fail(failure)
                } catch is CancellationError {
                    return
                } catch {
                    await exchange.drainBody()
                    try await exchange.fail(AgentFailure(status: 500, code: AgentErrorCode.failed, message: "\(error)"))
                }
            }
        } catch {
            logger.debug("stream ended with error", metadata: ["error": "\(error)"])
        }
    }

    static func waitForClose(_ channel: any Channel, limit: TimeAmount) async {
        let timer = channel.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
        try? await channel.closeFuture.get()
        timer.cancel()
    }

    private func route(_ exchange: inout Exchange) async throws {
        typealias P = AgentAPI.Path
        switch (exchange.head.method, exchange.path) {
        case (.GET, P.health):
            let settings = await identity.snapshot()
            try await exchange.respond(
                HealthResponse(
                    apiVersion: AgentAPI.version, sandboxID: settings.sandboxID,
                    uptimeMillis: Clock.monotonicMillis() - bootMillis, processes: await table.runningCount))
        case (.POST, P.initialize):
            let request = try await exchange.decode(InitRequest.self)
            let response = try await identity.apply(request)
            await table.forgetFinished()
            try await exchange.respond(response)
        case (.POST, P.prepareSnapshot):
            _ = try await exchange.readBody()
            sync()
            SnapshotHandshake.request()
            try await exchange.respondEmpty()
        case (.GET, P.metrics):
            try await exchange.respond(GuestSampler.sample(bootMillis: bootMillis))
        case (.POST, P.clock):
            let request = try await exchange.decode(ClockRequest.self)
            let rc = omr_set_clock(request.unixTimeNanos)
            guard rc == 0 else { throw AgentFailure(status: 500, code: AgentErrorCode.failed, message: "setting the clock failed: errno \(rc)") }
            try await exchange.respondEmpty()
        case (.POST, P.shutdown):
            _ = try await exchange.readBody()
            try await exchange.respondEmpty()
            await onShutdown()

        case (.POST, P.processStart):
            let request = try await exchange.decode(ProcessStartRequest.self)
            let pid = try await launcher.start(request)
            try await streamLines(try await table.subscribe(pid: pid, replay: true), to: &exchange)
        case (.POST, P.processConnect):
            let selector = try await exchange.decode(ProcessSelector.self)
            let pid = try await table.resolve(selector)
            try await streamLines(try await table.subscribe(pid: pid, replay: selector.replay), to: &exchange)
        case (.POST, P.processInput):
            let request = try await exchange.decode(ProcessInputRequest.self)
            if let data = request.data {
                let bytes = try AgentCoding.unbase64(data)
                guard let sink = try await table.inputSink(pid: request.pid) else {
                    throw AgentFailure.conflict("process \(request.pid) was started without stdin")
                }
                try await sink.writeAndFlush(ByteBuffer(bytes: bytes)).get()
            }
            if request.close { try await table.closeInput(pid: request.pid) }
            try await exchange.respondEmpty()
        case (.POST, P.processSignal):
            let request = try await exchange.decode(ProcessSignalRequest.self)
            guard request.signal > 0, request.signal < 65 else { throw AgentFailure.badRequest("invalid signal \(request.signal)") }
            try await table.signal(pid: request.pid, signal: request.signal)
            try await exchange.respondEmpty()
        case (.POST, P.processResize):
            let request = try await exchange.decode(ProcessResizeRequest.self)
            guard request.size.cols > 0, request.size.rows > 0, request.size.cols < 10000, request.size.rows < 10000 else {
                throw AgentFailure.badRequest("invalid terminal size")
            }
            let fd = try await table.ptyMaster(pid: request.pid)
            let rc = omr_set_winsize(fd, UInt16(request.size.cols), UInt16(request.size.rows))
            if rc != 0 { throw AgentFailure.errno(rc, "resize", path: "pty") }
            try await exchange.respondEmpty()
        case (.GET, P.processOutput):
            guard let pid = Int32(try exchange.param("pid")) else { throw AgentFailure.badRequest("invalid pid") }
            try await exchange.respond(try await table.output(pid: pid))
        case (.GET, P.processList):
            let processes = await table.list(includeFinished: exchange.query["all"] == "1")
            try await exchange.respond(processes.filter { $0.tag != ContextsAPI.serviceTag })

        case (.GET, P.fileRead):
            try await readFile(&exchange)
        case (.PUT, P.fileWrite), (.POST, P.fileWrite):
            try await writeFile(&exchange)
        case (.GET, P.fileStat):
            try await exchange.respond(try await files.stat(path: try exchange.param("path"), user: exchange.query["user"]))
        case (.GET, P.fileList):
            let depth = Int(exchange.query["depth"] ?? "1") ?? 1
            try await exchange.respond(
                try await files.list(path: try exchange.param("path"), depth: depth, user: exchange.query["user"]))
        case (.POST, P.fileMakeDirectory):
            try await exchange.respond(try await files.makeDirectory(try await exchange.decode(MakeDirectoryRequest.self)))
        case (.POST, P.fileMove):
            try await exchange.respond(try await files.move(try await exchange.decode(MoveRequest.self)))
        case (.POST, P.fileRemove):
            try await files.remove(try await exchange.decode(RemoveRequest.self))
            try await exchange.respondEmpty()
        case (.GET, P.fileWatch):
            let user = try await files.user(exchange.query["user"])
            let (events, channel) = try await DirectoryWatcher.watch(
                path: try exchange.param("path"), recursive: exchange.query["recursive"] == "true", user: user,
                files: files, group: group)
            defer { channel.close(promise: nil) }
            try await streamLines(events, to: &exchange)

        case (.POST, P.tunnel):
            guard let port = Int(try exchange.param("port")), port > 0, port < 65536 else {
                throw AgentFailure.badRequest("invalid port")
            }
            try await Tunnel.run(port: port, exchange: &exchange, group: group)
        case (.GET, DesktopAPI.Path.screenshot):
            let png = try await desktop.screenshot()
            try await exchange.writeHead(status: 200, contentType: "image/png", extra: [("content-length", "\(png.count)")])
            try await exchange.writeBody(png)
            try await exchange.end()
        case (.GET, DesktopAPI.Path.capture):
            let image = try await desktop.capture()
            try await exchange.writeHead(
                status: 200, contentType: "application/octet-stream",
                extra: [
                    ("content-length", "\(image.rgb.count)"), (DesktopAPI.widthHeader, "\(image.width)"),
                    (DesktopAPI.heightHeader, "\(image.height)"),
                ])
            try await exchange.writeBody(image.rgb)
            try await exchange.end()
        case (.GET, DesktopAPI.Path.screen):
            try await exchange.respond(try await desktop.screen())
        case (.POST, DesktopAPI.Path.mouse):
            try await desktop.mouse(try await exchange.decode(DesktopMouseRequest.self))
            try await exchange.respondEmpty()
        case (.POST, DesktopAPI.Path.keyboard):
            try await desktop.keyboard(try await exchange.decode(DesktopKeyboardRequest.self))
            try await exchange.respondEmpty()
        case (.POST, ContextsAPI.path):
            try await contexts.run(&exchange)
        case (.POST, P.gatewayAccept):
            try await HostGateway.accept(&exchange, gateway: gateway)
        default:
            throw AgentFailure.notFound("no route \(exchange.head.method) \(exchange.path)")
        }
    }

    private func readFile(_ exchange: inout Exchange) async throws {
        let (fd, size, _) = try await files.openForReading(path: try exchange.param("path"), user: exchange.query["user"])
        do {
            try await exchange.writeHead(status: 200, contentType: "application/octet-stream", extra: [("x-file-size", "\(size)")])
            while let chunk = try await files.readChunk(fd: fd) {
                try await exchange.writeBody(chunk)
            }
            try await exchange.end()
        } catch {
            await files.closeFD(fd)
            throw error
        }
        await files.closeFD(fd)
    }

    private func writeFile(_ exchange: inout Exchange) async throws {
        let mode = exchange.query["mode"].flatMap { UInt32($0, radix: 8) }
        let (fd, path) = try await files.openForWriting(
            path: try exchange.param("path"), user: exchange.query["user"], mode: mode,
            append: exchange.query["append"] == "true")
        do {
            // Frames arrive in pieces of up to a frame's size; each write is a trip to
            // the I/O thread, so pieces are gathered into writes of up to 1 MiB.
            var pending = ByteBuffer()
            while let chunk = try await exchange.nextBodyChunk() {
                if pending.readableBytes == 0, chunk.readableBytes >= FileService.writeBatchSize {
                    try await files.writeChunk(fd: fd, chunk, path: path)
                    continue
                }
                var chunk = chunk
                pending.writeBuffer(&chunk)
                if pending.readableBytes >= FileService.writeBatchSize {
                    try await files.writeChunk(fd: fd, pending, path: path)
                    pending.clear()
                }
            }
            if pending.readableBytes > 0 { try await files.writeChunk(fd: fd, pending, path: path) }
        } catch {
            await files.closeFD(fd)
            throw error
        }
        try await exchange.respond(try await files.finishWriting(fd: fd, path: path))
    }
}
