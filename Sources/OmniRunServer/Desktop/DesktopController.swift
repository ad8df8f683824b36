import AgentProtocol
import Foundation
import Hummingbird
import NIOCore
import OmniRunError

/// Desktop routes (wire protocol §13): screenshots, mouse, keyboard, the screen and the
/// noVNC stream's coordinates. Each call goes through `SandboxService.sandbox`, so input
/// and screenshots count as the sandbox's activity.
struct DesktopController {
    let service: SandboxService
    let configuration: ServerConfiguration

    func register(on router: Router<AppRequestContext>) {
        router.get("/sandboxes/:id/desktop/screenshot", use: screenshot)
        router.get("/sandboxes/:id/desktop/screen", use: screen)
        router.get("/sandboxes/:id/desktop/stream", use: stream)
        router.post("/sandboxes/:id/desktop/mouse", use: mouse)
        router.post("/sandboxes/:id/desktop/keyboard", use: keyboard)
    }

    @Sendable func screenshot(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        let png = try await sandbox.agent.desktopScreenshot()
        var headers = HTTPFields()
        headers[.contentType] = "image/png"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: png)))
    }

    @Sendable func screen(_ request: Request, context: AppRequestContext) async throws -> Response {
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: try context.requireAccount())
        return JSON.response(try await sandbox.agent.desktopScreen())
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
        do {
            _ = try await sandbox.agent.stat(path: DesktopAPI.displaySocket)
        } catch let error as OmniRunError where error.code == .notFound {
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
        try await sandbox.agent.desktopMouse(body)
        return JSON.noContent()
    }

    @Sendable func keyboard(_ request: Request, context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let body = try await JSON.decode(DesktopKeyboardRequest.self, from: request, limit: 1 << 20)
        do { try body.validate() } catch { throw OmniRunError(.invalidArgument, error.message) }
        let sandbox = try await service.sandbox(try context.parameters.require("id"), account: account)
        try await sandbox.agent.desktopKeyboard(body)
        return JSON.noContent()
    }
}
