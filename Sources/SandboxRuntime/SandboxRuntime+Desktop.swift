import AgentClient
import AgentProtocol
import Foundation
import Logging
import OmniRunCore
import OmniRunError

/// A desktop's screen size asked for at create: `RESOLUTION` in the create's `envVars`, as
/// the public CLI's `beamup desktop` sends it (`WIDTHxHEIGHT` or `WIDTHxHEIGHTxDEPTH`).
/// The desktop starts at 1024x768x24 in the template's snapshot; a restored desktop changes
/// its width and height with RandR (Xvnc), never its colour depth.
public struct ScreenSize: Sendable, Equatable, CustomStringConvertible {
    public var width: Int
    public var height: Int

    public static let depth = 24
    public static let widths = 320...4096
    public static let heights = 240...4096

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Parses `WIDTHxHEIGHT[xDEPTH]`; anything else, a size out of range or a depth other than
    /// the desktop's is a 400 that says what is accepted.
    public init(parsing text: String) throws {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard (2...3).contains(parts.count), text.count <= 20,
            parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            let width = Int(parts[0]), let height = Int(parts[1])
        else {
            throw OmniRunError(.invalidArgument, "RESOLUTION must be WIDTHxHEIGHT or WIDTHxHEIGHTxDEPTH, e.g. 1280x800, not '\(text.prefix(40))'")
        }
        guard Self.widths.contains(width), Self.heights.contains(height) else {
            throw OmniRunError(
                .invalidArgument,
                "RESOLUTION \(width)x\(height) is out of range: width \(Self.widths.lowerBound)–\(Self.widths.upperBound), height \(Self.heights.lowerBound)–\(Self.heights.upperBound)"
            )
        }
        if parts.count == 3, Int(parts[2]) != Self.depth {
            throw OmniRunError(.invalidArgument, "the desktop's colour depth is \(Self.depth): RESOLUTION may change its width and height only")
        }
        self.init(width: width, height: height)
    }

    public var description: String { "\(width)x\(height)" }
}

extension SandboxRuntime {
    /// The path of the desktop template's start command: a template whose START it is has a desktop.
    public static let desktopStart = "/usr/local/lib/omnirun/start-desktop"

    /// Whether sandboxes of a template have a desktop (its START is the desktop's).
    public nonisolated func hasDesktop(_ template: String) -> Bool {
        (try? catalog.template(named: template))?.setup.start == Self.desktopStart
    }

    /// Sets the screen of a just restored desktop to `size`, then waits (at most 30 s) until
    /// it is finished again (the panels laid out and painted for the new size), so that the
    /// first screenshot shows the whole desktop at its size. A size that does not take is an
    /// error; a screen still changing after the wait is not (a clock, a loaded host).
    static func setScreen(_ agent: GuestAgentClient, id: SandboxID, size: ScreenSize, logger: Logger) async throws {
        // Xvnc takes any size as a mode of its output (the timings are not used); `--fb`
        // alone would grow the framebuffer and leave the monitor, which the panels and
        // `xdotool getdisplaygeometry` follow, as it was.
        let (w, h) = (size.width, size.height)
        let switchMode = """
            output=$(xrandr | awk '/ connected/ { print $1; exit }')
            [ -n "$output" ] || { echo "no connected output" >&2; exit 3; }
            xrandr --newmode omnirun-\(w)x\(h) 60 \(w) \(w) \(w) \(w) \(h) \(h) \(h) \(h) 2>/dev/null || true
            xrandr --addmode "$output" omnirun-\(w)x\(h) 2>/dev/null || true
            xrandr --output "$output" --mode omnirun-\(w)x\(h)
            """
        let switched = try await agent.run(
            ProcessStartRequest(shell: switchMode, env: ["DISPLAY": ":0"], user: "user", timeoutMillis: 60_000))
        guard switched.exitCode == 0 else {
            throw OmniRunError(
                .agentError,
                "sandbox \(id): the desktop could not be set to \(size): \(String(switched.stderrText.suffix(300)))")
        }
        let settle = "end=$((SECONDS + 30)); until /usr/local/lib/omnirun/screen-settled 2>/dev/null; do "
            + "[ $SECONDS -lt $end ] || exit 4; sleep 0.5; done"
        let settled = try? await agent.run(
            ProcessStartRequest(shell: settle, env: ["DISPLAY": ":0"], user: "user", timeoutMillis: 90_000))
        if settled?.exitCode != 0 {
            logger.info(
                "the desktop's screen was still changing after its resize",
                metadata: ["sandbox": "\(id)", "size": "\(size)"])
        }
    }
}
