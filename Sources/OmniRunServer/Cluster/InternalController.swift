import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OmniRunControl
import OmniRunError
import SandboxRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The node-to-node routes (`/internal/…`, reached only with a node's signature, see
/// `NodeAuthMiddleware`): a custom template this node holds, described and its image
/// streamed, for a node that is about to create a sandbox of it; a paused sandbox handed
/// from a draining node to this one (asked, followed, and its files fetched).
struct InternalController {
    let replication: TemplateReplication
    let moves: PausedMoves
    let catalog: ImageCatalog
    let builtIns: BuiltInTemplates

    var routes: RouteCollection<AppRequestContext> {
        let router = RouteCollection(context: AppRequestContext.self)
        router.get("/internal/templates/{name}") { _, context -> Response in
            let (template, name) = try held(context)
            return JSON.response(try TemplateTransfer.describe(template, build: replication.localBuild(name), catalog: catalog))
        }
        router.get("/internal/templates/{name}/rootfs") { _, context -> Response in
            let (template, _) = try held(context)
            return try stream(template.image.rootfs)
        }
        router.post("/internal/sandboxes/{id}/adopt") { _, context -> Response in
            guard let node = context.callingNode else { throw OmniRunError(.unauthorized, "this route is for the nodes of the cluster") }
            try await moves.adopt(context.parameters.get("id") ?? "", from: node)
            return JSON.response(ArrivalStatus(state: "moving"), status: .accepted)
        }
        router.get("/internal/sandboxes/{id}/adopt") { _, context -> Response in
            JSON.response(await moves.arrival(context.parameters.get("id") ?? ""))
        }
        router.get("/internal/sandboxes/{id}/moving") { _, context -> Response in
            guard let transfer = await moves.outgoingTransfer(context.parameters.get("id") ?? "") else {
                throw OmniRunError(.notFound, "this node is handing over no such sandbox")
            }
            return JSON.response(transfer)
        }
        router.get("/internal/sandboxes/{id}/moving/{part}") { _, context -> Response in
            guard
                let path = await moves.outgoingFile(context.parameters.get("id") ?? "", part: context.parameters.get("part") ?? "")
            else { throw OmniRunError(.notFound, "this node is handing over no such sandbox or part") }
            return try stream(path)
        }
        return router
    }

    /// A custom template this node has published (never a built-in: every node builds those).
    func held(_ context: AppRequestContext) throws -> (TemplateImage, String) {
        let name = context.parameters.get("name") ?? ""
        guard ImageCatalog.isValidName(name), !builtIns.contains(name), ImageCatalog.aliases[name] == nil,
            !catalog.builtInTemplates().contains(name),
            let template = try? catalog.template(named: name)
        else { throw OmniRunError(.notFound, "this node holds no custom template '\(name.prefix(64))'") }
        return (template, name)
    }

    /// The file's bytes in 1 MiB pieces, read as the client takes them.
    func stream(_ path: String) throws -> Response {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw OmniRunError(.notFound, "the template's image is missing on this node") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw OmniRunError(.internalError, "cannot read the template's image")
        }
        let size = Int64(clamping: info.st_size)
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[.contentLength] = "\(size)"
        let body = ResponseBody { writer in
            defer { close(fd) }
            var offset: Int64 = 0
            var buffer = ByteBuffer()
            while offset < size {
                let want = Int(min(Int64(1 << 20), size - offset))
                buffer.clear(minimumCapacity: want)
                let got = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { raw in
                    max(0, pread(fd, raw.baseAddress!, want, off_t(offset)))
                }
                guard got > 0 else { throw OmniRunError(.internalError, "the template's image shrank while it was read") }
                offset += Int64(clamping: got)
                try await writer.write(buffer)
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}
