import AgentProtocol
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunError
import SandboxRuntime
import ScreenImage

/// Desktop routes (wire protocol §13): screenshots, mouse, keyboard, the screen and the
/// noVNC stream's coordinates. Each call goes through `SandboxService.sandbox`, so input
/// and screenshots count as the sandbox's activity.
struct DesktopController {
    let service: SandboxService
    let configuration: ServerConfiguration

    /// The routes of this area.
    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.get("/sandboxes/:id/desktop/screenshot", use: screenshot)
        router.get("/sandboxes/:id/desktop/screen", use: screen)
        router.get("/sandboxes/:id/desktop/stream", use: stream)
        router.post("/sandboxes/:id/desktop/mouse", use: mouse)
        router.post("/sandboxes/:id/desktop/keyboard", use: keyboard)
        return router
    }

    /// The whole screen as a PNG. `?scale=0.5` or `?maxWidth=1280&maxHeight=800` shrink it
    /// (area averaging, never enlarged); the answer's `X-OmniRun-Scale-Factor` is the image's
    /// width over the screen's, what coordinates in the image are divided by to click on the
    /// screen, and `X-OmniRun-Screen-Width`/`-Height` give the screen's own size.
    @Sendable func screenshot(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let scaling = try Self.scaling(request.uri.queryParameters)
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: account)
        let shot: Screenshot
        do {
            let capture = try await sandbox.desktopCapture()
            shot = Screenshot(capture: RGBImage(width: capture.width, height: capture.height, pixels: capture.rgb), scaling: scaling)
        } catch let error as OmniRunError where error.code == .notFound {
            // An agent from before the raw capture (a template image not rebuilt since): maim's PNG.
            let png = try await sandbox.desktopScreenshot()
            do {
                shot = try Screenshot(png: png, scaling: scaling)
            } catch let error as OmniRunError {
                throw OmniRunError(.agentError, "the sandbox's screenshot could not be read: \(error.message)")
            }
        }
        var headers = HTTPFields()
        headers[.contentType] = "image/png"
        headers[.cacheControl] = "no-store"
        headers[Self.scaleFactorHeader] = String(shot.factor)
        headers[Self.screenWidthHeader] = String(shot.screenWidth)
        headers[Self.screenHeightHeader] = String(shot.screenHeight)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: shot.png)))
    }

    static let scaleFactorHeader = HTTPField.Name("X-OmniRun-Scale-Factor")!
    static let screenWidthHeader = HTTPField.Name("X-OmniRun-Screen-Width")!
    static let screenHeightHeader = HTTPField.Name("X-OmniRun-Screen-Height")!

    static func scaling(_ query: some Collection<(key: Substring, value: Substring)>) throws -> ScreenshotScale {
        var values: [String: String] = [:]
        for (key, value) in query where ["scale", "maxWidth", "maxHeight"].contains(String(key)) {
            values[String(key)] = String(value)
        }
        func number<T: LosslessStringConvertible>(_ name: String, _: T.Type) throws -> T? {
            guard let text = values[name] else { return nil }
            guard let value = T(text) else { throw OmniRunError(.invalidArgument, "\(name) must be a number, not '\(text.prefix(40))'") }
            return value
        }
        return try ScreenshotScale(
            scale: number("scale", Double.self), maxWidth: number("maxWidth", Int.self), maxHeight: number("maxHeight", Int.self))
    }

    @Sendable func screen(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        return JSON.response(try await sandbox.desktopScreen())
    }

    struct StreamInfo: Encodable {
        var novncPort: Int
        var vncPort: Int
        var wsPath: String
    }

    /// Where the live view is: noVNC on `novncPort` (reached through an exposure of that
    /// port), relaying to the VNC server on the guest's loopback.
    @Sendable func stream(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        guard try await sandbox.hasDesktopDisplay() else {
            throw OmniRunError(.conflict, "this sandbox has no desktop (create it from the 'desktop' template)")
        }
        return JSON.response(
            StreamInfo(novncPort: DesktopAPI.novncPort, vncPort: DesktopAPI.vncPort, wsPath: DesktopAPI.websocketPath))
    }

    @Sendable func mouse(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(DesktopMouseRequest.self, from: request, limit: 64 << 10)
        do { try body.validate() } catch { throw OmniRunError(.invalidArgument, error.message) }
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: account)
        try await sandbox.desktopMouse(body)
        return JSON.noContent()
    }

    @Sendable func keyboard(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(DesktopKeyboardRequest.self, from: request, limit: 1 << 20)
        do { try body.validate() } catch { throw OmniRunError(.invalidArgument, error.message) }
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: account)
        try await sandbox.desktopKeyboard(body)
        return JSON.noContent()
    }
}
