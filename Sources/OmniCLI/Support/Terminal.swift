#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The local terminal of `omni shell`: raw mode (restored on every exit path) and its size.
final class RawTerminal: @unchecked Sendable {
    private var saved = termios()
    private var active = false

    var isTerminal: Bool { isatty(STDIN_FILENO) == 1 }

    /// Keys go to the sandbox as typed: no echo, no line editing, no signals from ^C/^Z.
    func enable() {
        guard isTerminal, tcgetattr(STDIN_FILENO, &saved) == 0 else { return }
        var raw = saved
        cfmakeraw(&raw)
        if tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 { active = true }
    }

    func restore() {
        guard active else { return }
        var original = saved
        tcsetattr(STDIN_FILENO, TCSANOW, &original)
        active = false
    }

    /// Columns and rows of the terminal (80x24 when stdin is not one).
    static func size() -> (cols: Int, rows: Int) {
        var size = winsize()
        let status = withUnsafeMutablePointer(to: &size) { ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), $0) }
        if status == 0, size.ws_col > 0, size.ws_row > 0 {
            return (Int(size.ws_col), Int(size.ws_row))
        }
        return (80, 24)
    }
}

/// Calls `handler` on every SIGWINCH (the terminal was resized).
final class WindowChanges: @unchecked Sendable {
    private let source: any DispatchSourceSignal

    init(_ handler: @escaping @Sendable () -> Void) {
        signal(SIGWINCH, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
        source.setEventHandler(handler: handler)
        source.resume()
    }

    func cancel() {
        source.cancel()
    }
}
