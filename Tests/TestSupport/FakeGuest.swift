import AgentProtocol
import Foundation

/// The inside of a fake guest: its state (files, identity), its processes and the ports
/// something listens on. `FakeGuestAgent` serves it over the real protocol.
///
/// Commands are not run: a few are understood, everything else exits 0 with no output.
/// - `echo WORDS` prints the words and a newline; `echo WORDS > PATH` (or `>>`) writes them to a file
/// - `cat PATH` prints a file (exit 1 and a message on stderr when there is none)
/// - `sleep N` waits N seconds (fractions allowed); `exit N`, `true`, `false`
/// - a command naming `http.server PORT` (`python3 -m http.server 8000`) listens on PORT
///   (for tunnels and exposures) until it is killed
///
/// A process that outlives its `timeoutMillis` ends as the agent ends it (`error: timeout`,
/// SIGKILL). Output is delivered when the process ends.
actor FakeGuest {
    private(set) var state: FakeGuestState
    private var processes: [Int32: GuestProcess] = [:]
    private var nextPID: Int32 = 100
    /// Ports something listens on, and the pid that listens.
    private var listeners: [Int: Int32] = [:]
    private let machineID = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    private let booted = ContinuousClock.now
    /// The lifecycle calls the host made, in order (`health`, `initialize`).
    private(set) var lifecycleCalls: [String] = []
    /// Where the agent's console lines go (the machine's console log), if anywhere.
    private let console: String?

    struct GuestProcess {
        var info: GuestProcessInfo
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var acceptsInput: Bool
        var error: String?
        var runner: Task<Void, Never>?
        let started = ContinuousClock.now
    }

    init(state: FakeGuestState, console: String?) {
        self.state = state
        self.console = console
    }

    // MARK: lifecycle

    func health() -> HealthResponse {
        lifecycleCalls.append("health")
        return HealthResponse(
            apiVersion: AgentAPI.version, sandboxID: state.sandboxID, uptimeMillis: uptimeMillis,
            processes: processes.values.filter(\.info.running).count)
    }

    var uptimeMillis: Int64 {
        let elapsed = ContinuousClock.now - booted
        return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    }

    func initialize(_ request: InitRequest) throws -> InitResponse {
        lifecycleCalls.append("initialize")
        state.sandboxID = request.sandboxID
        state.hostname = request.hostname
        state.env = request.env
        state.defaultUser = request.defaultUser
        state.defaultCwd = request.defaultCwd
        if let path = request.envFile, let vars = request.envFileVars {
            let text = vars.sorted { $0.key < $1.key }.map { "export \($0.key)='\($0.value)'\n" }.joined()
            _ = try state.write(try state.absolute(path, user: "root"), Array(text.utf8), mode: 0o600, append: false, owner: request.defaultUser)
        }
        processes = processes.filter(\.value.info.running)
        return InitResponse(machineID: machineID, entropyAdded: true)
    }

    /// What the agent does before a snapshot or a pause: says on the console that it is parked.
    func park() {
        guard let console, let handle = FileHandle(forWritingAtPath: console) else { return }
        handle.seekToEndOfFile()
        handle.write(Data((AgentAPI.snapshotParkedMarker + "\n").utf8))
        try? handle.close()
    }

    func metrics() -> GuestMetrics {
        let used = state.nodes.values.reduce(0) { $0 + UInt64($1.contents?.count ?? 0) }
        return GuestMetrics(
            cpuBusyTicks: 10, cpuTotalTicks: 1000, cpuCount: 1, memTotalBytes: 256 << 20, memUsedBytes: 32 << 20,
            diskTotalBytes: 1 << 30, diskUsedBytes: used, uptimeMillis: uptimeMillis)
    }

    /// Ends every process (the machine stops).
    func stop() {
        for pid in processes.keys { finish(pid, exitCode: 137, signal: 9) }
    }

    // MARK: files

    func user(_ name: String?) -> String { name.flatMap { $0.isEmpty ? nil : $0 } ?? state.defaultUser }

    func absolute(_ path: String, user: String?) throws -> String { try state.absolute(path, user: self.user(user)) }

    func stat(_ path: String, user: String?) throws -> FileEntry { try state.stat(try absolute(path, user: user)) }

    func list(_ path: String, depth: Int, user: String?) throws -> [FileEntry] {
        try state.list(try absolute(path, user: user), depth: depth)
    }

    func read(_ path: String, user: String?) throws -> Data { try state.read(try absolute(path, user: user)) }

    func write(_ path: String, user: String?, bytes: [UInt8], mode: UInt32?, append: Bool) throws -> FileEntry {
        try state.write(try absolute(path, user: user), bytes, mode: mode, append: append, owner: self.user(user))
    }

    func makeDirectory(_ request: MakeDirectoryRequest) throws -> FileEntry {
        let path = try absolute(request.path, user: request.user)
        try state.makeDirectories(path, owner: user(request.user))
        return try state.stat(path)
    }

    func move(_ request: MoveRequest) throws -> FileEntry {
        try state.move(from: try absolute(request.from, user: request.user), to: try absolute(request.to, user: request.user))
    }

    func remove(_ request: RemoveRequest) throws {
        try state.remove(try absolute(request.path, user: request.user), recursive: request.recursive)
    }

    func isListening(_ port: Int) -> Bool { listeners[port] != nil }

    // MARK: processes

    func start(_ request: ProcessStartRequest) -> Int32 {
        let pid = nextPID
        nextPID += 1
        let command = request.shell ?? request.argv?.joined(separator: " ") ?? ""
        let user = self.user(request.user)
        processes[pid] = GuestProcess(
            info: GuestProcessInfo(
                pid: pid, tag: request.tag, command: command, user: user, cwd: request.cwd ?? FakeGuestState.home(of: user),
                pty: request.pty != nil, running: true, exitCode: nil, signal: nil, startedAtMillis: guestClockMillis(),
                endedAtMillis: nil),
            acceptsInput: request.stdin || request.pty != nil)
        let limit = request.timeoutMillis.map { Duration.milliseconds(max(0, $0)) }
        processes[pid]?.runner = Task { await self.run(pid, FakeCommand(command), user: user, limit: limit) }
        return pid
    }

    private func run(_ pid: Int32, _ command: FakeCommand, user: String, limit: Duration?) async {
        switch command {
        case .print(let text, let file, let append):
            guard let file else {
                processes[pid]?.stdout += Array(text.utf8)
                return finish(pid, exitCode: 0)
            }
            do {
                _ = try write(file, user: user, bytes: Array(text.utf8), mode: nil, append: append)
                finish(pid, exitCode: 0)
            } catch {
                processes[pid]?.stderr += Array("sh: \(file): \((error as? FakeGuestError)?.message ?? "\(error)")\n".utf8)
                finish(pid, exitCode: 1)
            }
        case .cat(let path):
            do {
                processes[pid]?.stdout += Array(try read(path, user: user))
                finish(pid, exitCode: 0)
            } catch {
                processes[pid]?.stderr += Array("cat: \(path): No such file or directory\n".utf8)
                finish(pid, exitCode: 1)
            }
        case .exit(let code):
            finish(pid, exitCode: code)
        case .wait(let duration, let port):
            if let port { listeners[port] = pid }
            let bound = [duration, limit].compactMap { $0 }.min()
            do {
                if let bound {
                    try await Task.sleep(for: bound)
                } else {
                    while true { try await Task.sleep(for: .seconds(3600)) }
                }
            } catch {
                return  // killed: `signal` or `stop` ended it
            }
            if let duration, limit.map({ duration <= $0 }) ?? true {
                finish(pid, exitCode: 0)
            } else {
                finish(pid, exitCode: 137, signal: 9, error: "timeout")
            }
        }
    }

    private func finish(_ pid: Int32, exitCode: Int32, signal: Int32? = nil, error: String? = nil) {
        guard var process = processes[pid], process.info.running else { return }
        process.info.running = false
        process.info.exitCode = exitCode
        process.info.signal = signal
        process.info.endedAtMillis = guestClockMillis()
        process.error = error
        process.runner?.cancel()
        process.runner = nil
        processes[pid] = process
        listeners = listeners.filter { $0.value != pid }
    }

    /// The `end` event of a process that has ended (nil while it runs).
    func end(of pid: Int32) -> ProcessEvent? {
        guard let process = processes[pid] else {
            return ProcessEvent(type: .end, pid: pid, exitCode: -1, error: "unknown process")
        }
        guard !process.info.running else { return nil }
        let took = ContinuousClock.now - process.started
        return ProcessEvent(
            type: .end, pid: pid, exitCode: process.info.exitCode, signal: process.info.signal, error: process.error,
            timestampMillis: process.info.endedAtMillis,
            durationMicros: took.components.seconds * 1_000_000 + took.components.attoseconds / 1_000_000_000_000)
    }

    /// The output a process has written so far, as events.
    func outputEvents(of pid: Int32) -> [ProcessEvent] {
        guard let process = processes[pid] else { return [] }
        var events: [ProcessEvent] = []
        if !process.stdout.isEmpty { events.append(ProcessEvent(type: .stdout, pid: pid, data: Data(process.stdout).base64EncodedString())) }
        if !process.stderr.isEmpty { events.append(ProcessEvent(type: .stderr, pid: pid, data: Data(process.stderr).base64EncodedString())) }
        return events
    }

    func resolve(_ selector: ProcessSelector) throws -> Int32 {
        if let pid = selector.pid, processes[pid] != nil { return pid }
        if let tag = selector.tag, let found = processes.values.filter({ $0.info.tag == tag }).max(by: { $0.info.pid < $1.info.pid }) {
            return found.info.pid
        }
        throw FakeGuestError.notFound("no such process")
    }

    func input(_ request: ProcessInputRequest) throws {
        guard let process = processes[request.pid] else { throw FakeGuestError.notFound("no process \(request.pid)") }
        guard process.acceptsInput else { throw FakeGuestError.conflict("process \(request.pid) was started without stdin") }
    }

    func signal(_ request: ProcessSignalRequest) throws {
        guard request.signal > 0, request.signal < 65 else { throw FakeGuestError.badRequest("invalid signal \(request.signal)") }
        guard processes[request.pid] != nil else { throw FakeGuestError.notFound("no process \(request.pid)") }
        finish(request.pid, exitCode: 128 + request.signal, signal: request.signal)
    }

    func output(of pid: Int32) throws -> ProcessOutput {
        guard let process = processes[pid] else { throw FakeGuestError.notFound("no process \(pid)") }
        return ProcessOutput(
            info: process.info, stdout: Data(process.stdout).base64EncodedString(), stderr: Data(process.stderr).base64EncodedString(),
            truncated: false)
    }

    func list(includeFinished: Bool) -> [GuestProcessInfo] {
        processes.values.map(\.info).filter { includeFinished || $0.running }.sorted { $0.pid < $1.pid }
    }
}

/// The commands a fake guest understands (see `FakeGuest`).
enum FakeCommand: Equatable {
    /// `echo` (to stdout, or into a file with `>`/`>>`).
    case print(String, file: String?, append: Bool)
    case cat(String)
    case exit(Int32)
    /// Runs for `duration` (nil: until killed), listening on `port` if given.
    case wait(Duration?, port: Int?)

    init(_ command: String) {
        let words = Self.words(command)
        if let index = words.firstIndex(of: "http.server"), index + 1 < words.count, let port = Int(words[index + 1]) {
            self = .wait(nil, port: port)
            return
        }
        switch words.first ?? "" {
        case "echo":
            var rest = Array(words.dropFirst())
            var file: String?
            var append = false
            if rest.count >= 2, [">", ">>"].contains(rest[rest.count - 2]) {
                append = rest[rest.count - 2] == ">>"
                file = rest[rest.count - 1]
                rest.removeLast(2)
            }
            self = .print(rest.joined(separator: " ") + "\n", file: file, append: append)
        case "cat" where words.count == 2: self = .cat(words[1])
        case "sleep" where words.count == 2: self = .wait(Double(words[1]).map { Duration.milliseconds(Int64($0 * 1000)) } ?? .zero, port: nil)
        case "exit": self = .exit(words.count > 1 ? Int32(words[1]) ?? 2 : 0)
        case "false": self = .exit(1)
        default: self = .exit(0)
        }
    }

    /// Shell words: split on blanks, quotes group and are removed (no expansions).
    static func words(_ command: String) -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        for character in command {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
                inWord = true
            } else if character == " " || character == "\t" || character == "\n" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }
}
