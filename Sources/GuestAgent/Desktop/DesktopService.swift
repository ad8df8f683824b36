import AgentProtocol
import Logging
import NIOPosix

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The desktop of the sandbox: screenshots with `maim` (PNG on its standard output, never
/// a file), input and the pointer's position with `xdotool`. Every tool runs with an
/// argument vector as the sandbox's user, on display `:0`, and leaves no entry in the
/// process list.
struct DesktopService: Sendable {
    let pool: NIOThreadPool
    let launcher: ProcessLauncher
    let table: ProcessTable
    let logger: Logger

    /// Largest screenshot accepted from `maim` (the agent keeps at most 16 MiB of a process's output).
    static let maxScreenshotBytes = 16 << 20

    func screenshot() async throws -> [UInt8] {
        let result = try await run(["maim", "--hidecursor", "--format", "png"], limit: Self.maxScreenshotBytes)
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard result.stdout.starts(with: png) else {
            throw AgentFailure(status: 500, code: AgentErrorCode.failed, message: "maim produced no PNG: \(result.stderrTail)")
        }
        return result.stdout
    }

    /// The screen's pixels, read from the X server on a pool thread (see `X11Capture`).
    func capture() async throws -> X11Capture.Image {
        guard access(DesktopAPI.displaySocket, F_OK) == 0 else {
            throw AgentFailure.conflict("this sandbox has no desktop (create it from the 'desktop' template)")
        }
        return try await pool.runIfActive { try X11Capture.capture(socketPath: DesktopAPI.displaySocket) }
    }

    func screen() async throws -> DesktopScreen {
        let result = try await run(["xdotool", "getdisplaygeometry", "getmouselocation", "--shell"])
        return try Self.parseScreen(String(decoding: result.stdout, as: UTF8.self))
    }

    func mouse(_ request: DesktopMouseRequest) async throws {
        do { try request.validate() } catch { throw AgentFailure.badRequest(error.message) }
        _ = try await run(Self.mouseArguments(request))
    }

    func keyboard(_ request: DesktopKeyboardRequest) async throws {
        do { try request.validate() } catch { throw AgentFailure.badRequest(error.message) }
        if request.action == .type {
            // Characters the keymap lacks are bound to spare keycodes first (xdotool's own
            // remapping is undone before a slow application reads the key, which then
            // sees nothing); a text with more of them than there are spare keycodes is
            // typed in parts.
            for (part, bindings) in Self.typingParts(request.text ?? "") {
                if !bindings.isEmpty { _ = try await run(["xmodmap"] + bindings.flatMap { ["-e", "keycode \($0.0) = \($0.1) \($0.1)"] }) }
                // ~12 ms a character (xdotool's delay), more under emulation
                _ = try await run(
                    ["xdotool", "type", "--delay", "12", "--", part], timeoutMillis: 30_000 + Int64(part.count) * 40)
            }
            return
        }
        _ = try await run(try Self.keyboardArguments(request))
    }

    /// Keycodes with no key on the US layout's keyboards (or rare multimedia keys), used for
    /// characters the keymap lacks.
    static let spareKeycodes = [222, 230, 248] + Array(232...247) + Array(249...255)

    /// The text cut into parts that each need at most `spareKeycodes.count` extra characters,
    /// with the `(keycode, keysym)` bindings each part needs.
    static func typingParts(_ text: String) -> [(String, [(Int, String)])] {
        var parts: [(String, [(Int, String)])] = []
        var current = String.UnicodeScalarView()
        var bound: [Unicode.Scalar: Int] = [:]
        var bindings: [(Int, String)] = []
        for scalar in text.unicodeScalars {
            if scalar.value >= 0xA0, bound[scalar] == nil {
                if bound.count == spareKeycodes.count {
                    parts.append((String(current), bindings))
                    current = String.UnicodeScalarView()
                    bound = [:]
                    bindings = []
                }
                let keycode = spareKeycodes[bound.count]
                bound[scalar] = keycode
                bindings.append((keycode, "U" + String(scalar.value, radix: 16, uppercase: true).leftPadded(toWidth: 4)))
            }
            current.append(scalar)
        }
        if !current.isEmpty { parts.append((String(current), bindings)) }
        return parts
    }

    /// `xdotool` arguments of a mouse action (one process: the commands are chained).
    static func mouseArguments(_ request: DesktopMouseRequest) -> [String] {
        var argv = ["xdotool"]
        if let x = request.x, let y = request.y { argv += ["mousemove", "\(x)", "\(y)"] }
        switch request.action {
        case .move: break
        case .click: argv += ["click", "1"]
        case .rightClick: argv += ["click", "3"]
        case .doubleClick: argv += ["click", "--repeat", "2", "--delay", "80", "1"]
        case .drag:
            let (x0, y0, x1, y1) = (request.x ?? 0, request.y ?? 0, request.endX ?? 0, request.endY ?? 0)
            // through a point on the way: some toolkits start a drag only on motion while pressed
            argv += ["mousedown", "1", "sleep", "0.05", "mousemove", "\((x0 + x1) / 2)", "\((y0 + y1) / 2)", "sleep", "0.05",
                "mousemove", "\(x1)", "\(y1)", "sleep", "0.05", "mouseup", "1"]
        case .scroll:
            let button: String
            switch request.direction ?? .down {
            case .up: button = "4"
            case .down: button = "5"
            case .left: button = "6"
            case .right: button = "7"
            }
            argv += ["click", "--repeat", "\(request.amount ?? 1)", "--delay", "20", button]
        }
        return argv
    }

    /// `xdotool` arguments of a keyboard action; `--` ends the options, so text or a key
    /// starting with `-` is never read as one.
    static func keyboardArguments(_ request: DesktopKeyboardRequest) throws -> [String] {
        switch request.action {
        case .type:
            return ["xdotool", "type", "--delay", "12", "--", request.text ?? ""]  // (see `keyboard`)
        case .press:
            let keysyms: [String]
            do { keysyms = try DesktopKeys.keysyms(request.key ?? "") } catch { throw AgentFailure.badRequest(error.message) }
            return ["xdotool", "key", "--clearmodifiers", "--", keysyms.joined(separator: "+")]
        }
    }

    /// Reads `WIDTH HEIGHT` then `X=…`, `Y=…` lines (`xdotool getdisplaygeometry getmouselocation --shell`).
    static func parseScreen(_ text: String) throws -> DesktopScreen {
        var numbers: [String: Int] = [:]
        var size: (Int, Int)? = nil
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ")
            if words.count == 2, let w = Int(words[0]), let h = Int(words[1]) {
                size = (w, h)
            } else if let eq = line.firstIndex(of: "="), let value = Int(line[line.index(after: eq)...]) {
                numbers[String(line[..<eq])] = value
            }
        }
        guard let size, let x = numbers["X"], let y = numbers["Y"] else {
            throw AgentFailure(status: 500, code: AgentErrorCode.failed, message: "cannot read the screen from xdotool: \(text.prefix(200))")
        }
        return DesktopScreen(width: size.0, height: size.1, cursorX: x, cursorY: y)
    }

    struct RunResult {
        var stdout: [UInt8]
        var stderr: [UInt8]
        var stderrTail: String { String(decoding: stderr.suffix(400), as: UTF8.self) }
    }

    /// Runs a tool on the display and collects its output; a failure names the tool and
    /// what it said.
    func run(_ argv: [String], limit: Int = 1 << 20, timeoutMillis: Int64 = 30_000) async throws -> RunResult {
        guard access(DesktopAPI.displaySocket, F_OK) == 0 else {
            throw AgentFailure.conflict("this sandbox has no desktop (create it from the 'desktop' template)")
        }
        let pid = try await launcher.start(
            ProcessStartRequest(argv: argv, env: ["DISPLAY": DesktopAPI.display], timeoutMillis: timeoutMillis))
        var result = RunResult(stdout: [], stderr: [])
        var end: ProcessEvent? = nil
        for await event in try await table.subscribe(pid: pid, replay: true) {
            switch event.type {
            case .stdout: result.stdout += event.bytes ?? []
            case .stderr: result.stderr += event.bytes ?? []
            case .truncated:
                try? await table.signal(pid: pid, signal: SIGKILL)
                throw AgentFailure(status: 500, code: AgentErrorCode.failed, message: "\(argv[0]) wrote more than the agent keeps")
            case .end: end = event
            case .start, .pty: break
            }
            if result.stdout.count > limit {
                try? await table.signal(pid: pid, signal: SIGKILL)
                throw AgentFailure(status: 500, code: AgentErrorCode.failed, message: "\(argv[0]) wrote more than \(limit) bytes")
            }
        }
        await table.discard(pid: pid)
        guard let end, end.exitCode == 0 else {
            let how = end.map { $0.error ?? "exit \($0.exitCode ?? -1)" } ?? "no exit status"
            logger.warning("desktop tool failed", metadata: ["tool": "\(argv[0])", "how": "\(how)", "stderr": "\(result.stderrTail)"])
            throw AgentFailure(status: 500, code: AgentErrorCode.failed, message: "\(argv[0]) failed (\(how)): \(result.stderrTail)")
        }
        return result
    }
}

extension String {
    func leftPadded(toWidth width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
