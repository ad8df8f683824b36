import AgentClient
import AgentProtocol
import Foundation
import OmniRunCore
import SandboxRuntime
import ScreenImage

/// The desktop phase of `omnirun bench --template desktop --phases desktop`: a desktop
/// sandbox restored (screen up, first screenshot) against one booted cold (boot, then the
/// template's start command until its ready check passes), screenshot latency and the
/// round trip of an input event.
struct DesktopBench {
    let runtime: SandboxRuntime
    let template: String
    let runs: Int
    let coldRuns: Int

    enum Row {
        static let restore = "desktop: restore → first screenshot"
        static let cold = "desktop: cold boot → desktop ready (start + ready check)"
        static let screenshot = "desktop: screenshot (X11 capture in the agent + PNG on the host)"
        static let scaled = "desktop: screenshot scaled to 0.5 (same path)"
        static let maim = "desktop: screenshot by maim in the guest (the path before)"
        static let capture = "desktop: of which the agent's capture and its transfer (raw RGB)"
        static let encode = "desktop: of which the PNG encoding on the host"
        static let mouse = "desktop: mouse move round trip"
        static let key = "desktop: key press round trip"
        static let order = [restore, cold, screenshot, capture, encode, scaled, maim, mouse, key]
    }

    func run(into report: inout BenchReport, progress: (String) -> Void) async throws {
        let image = try runtime.catalog.template(named: template)
        guard let start = image.setup.start, let ready = image.setup.ready else {
            throw BenchError("template \(template) has no start and ready commands: not a desktop")
        }
        var pngBytes = 0
        for i in 0..<runs {
            let started = ContinuousClock.now
            let sandbox = try await runtime.create(SandboxSpec(template: template))
            do {
                let png = try await Self.screenshot(sandbox, ScreenshotScale())
                report.add(Row.restore, (ContinuousClock.now - started).milliseconds)
                pngBytes = png.count
                let half = try ScreenshotScale(scale: 0.5)
                for _ in 0..<5 {
                    let t0 = ContinuousClock.now
                    _ = try await Self.screenshot(sandbox, ScreenshotScale())
                    report.add(Row.screenshot, (ContinuousClock.now - t0).milliseconds)
                    let t3 = ContinuousClock.now
                    _ = try await Self.screenshot(sandbox, half)
                    report.add(Row.scaled, (ContinuousClock.now - t3).milliseconds)
                    let t5 = ContinuousClock.now
                    let capture = try await sandbox.desktopCapture()
                    report.add(Row.capture, (ContinuousClock.now - t5).milliseconds)
                    let t6 = ContinuousClock.now
                    _ = PNG.encode(RGBImage(width: capture.width, height: capture.height, pixels: capture.rgb))
                    report.add(Row.encode, (ContinuousClock.now - t6).milliseconds)
                    let t4 = ContinuousClock.now
                    _ = try await sandbox.desktopScreenshot()
                    report.add(Row.maim, (ContinuousClock.now - t4).milliseconds)
                    let t1 = ContinuousClock.now
                    try await sandbox.desktopMouse(DesktopMouseRequest(action: .move, x: 100 + i, y: 100))
                    report.add(Row.mouse, (ContinuousClock.now - t1).milliseconds)
                    let t2 = ContinuousClock.now
                    try await sandbox.desktopKeyboard(DesktopKeyboardRequest(action: .press, key: "shift"))
                    report.add(Row.key, (ContinuousClock.now - t2).milliseconds)
                }
            } catch {
                await runtime.destroy(sandbox.id)
                throw error
            }
            await runtime.destroy(sandbox.id)
            progress("\r  desktop: restore \(i + 1)/\(runs)")
        }
        for i in 0..<coldRuns {
            let started = ContinuousClock.now
            let sandbox = try await runtime.create(SandboxSpec(template: template, coldBoot: true))
            do {
                _ = try await sandbox.start(ProcessStartRequest(shell: start, user: "root"))
                let deadline = ContinuousClock.now + image.setup.readyTimeout
                while try await sandbox.exec(ProcessStartRequest(shell: ready, user: "root", timeoutMillis: 60_000)).exitCode != 0 {
                    guard ContinuousClock.now < deadline else { throw BenchError("the cold desktop was not ready in time") }
                    try await Task.sleep(for: .milliseconds(250))
                }
                report.add(Row.cold, (ContinuousClock.now - started).milliseconds)
            } catch {
                await runtime.destroy(sandbox.id)
                throw error
            }
            await runtime.destroy(sandbox.id)
            progress("\r  desktop: cold \(i + 1)/\(coldRuns)  ")
        }
        progress("\n")
        report.figure("desktop: screenshot size (PNG)", Double(pngBytes) / 1024, "KiB")
        if let used = Self.usedMiB(image.image.rootfs) { report.figure("desktop: root file system used", used, "MiB") }
    }

    /// What `GET /desktop/screenshot` does: the agent's raw capture, encoded (and shrunk) here.
    static func screenshot(_ sandbox: Sandbox, _ scaling: ScreenshotScale) async throws -> [UInt8] {
        let capture = try await sandbox.desktopCapture()
        return Screenshot(capture: RGBImage(width: capture.width, height: capture.height, pixels: capture.rgb), scaling: scaling).png
    }

    /// Blocks a sparse image really uses.
    static func usedMiB(_ path: String) -> Double? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Double(info.st_blocks) * 512 / 1_048_576
    }
}
