import Foundation
import Testing
import TestSupport

/// What the preview gateway answers on every name of a port: a private exposure's token is
/// wanted on `{sandboxID}-{port}` too, and its error pages name no sandbox or exposure.
@Suite("Preview routing honours exposures", .timeLimit(.minutes(10)))
struct ExposureRoutingTests {
    /// Whether a gateway answer leaks an id (the public reads these pages).
    static func expectNoIDs(_ reply: RawHTTPClient.Response, _ ids: [String], _ what: String) {
        for id in ids where !id.isEmpty {
            #expect(!reply.text.contains(id), "\(what): \(reply.status) \(reply.text) names \(id)")
        }
    }

    @Test func aPrivateExposureGuardsTheDirectNameOfItsPort() async throws {
        let (server, client) = try await ExposureServer.client("private-direct")
        let port = server.previewPort
        let id = try await createSandbox(client, ["template": "playground", "timeout": 1800])
        defer { Task { _ = try? await client.delete("/sandboxes/\(id)") } }
        try await ExposureServer.startGuestServer(client, id, port: 8000)
        try await ExposureServer.startGuestServer(client, id, port: 8001)
        let direct = "\(id)-8000.localhost"
        var before: RawHTTPClient.Response?
        for _ in 0..<100 {
            before = try? await RawHTTPClient.request(port: port, host: direct, "/open", timeout: .seconds(20))
            if before?.status == 200 { break }
            try await Task.sleep(for: .milliseconds(300))
        }
        // No exposure yet: the direct name is open (as the wire protocol's getHost expects).
        #expect(before?.status == 200)

        let exposure = try await client.post("/sandboxes/\(id)/exposures", ["port": 8000, "visibility": "private"]).object
        let expID = exposure["id"] as? String ?? ""
        let token = String((exposure["accessUrl"] as? String ?? "").split(separator: "=").last ?? "")
        #expect(token.count == 64, "\(exposure)")
        let ids = [id, expID]

        // Without the token: refused on the direct name as on the exposure's own.
        let refused = try await RawHTTPClient.request(port: port, host: direct, "/x")
        #expect(refused.status == 401)
        Self.expectNoIDs(refused, ids, "401 on the direct name")
        let wrong = try await RawHTTPClient.request(port: port, host: direct, "/x", headers: ["x-omnirun-exposure-token": String(repeating: "0", count: 64)])
        #expect(wrong.status == 401)
        #expect(try await RawHTTPClient.request(port: port, host: direct, "/x?omnirun_token=nope").status == 401)
        // With it: the header, or the query (swapped for a cookie of this name), then the cookie.
        let withHeader = try await RawHTTPClient.request(port: port, host: direct, "/h", headers: ["x-omnirun-exposure-token": token])
        #expect(withHeader.status == 200)
        #expect(ExposureServer.json(withHeader)["path"] as? String == "/h")
        let redirect = try await RawHTTPClient.request(port: port, host: direct, "/q?a=1&omnirun_token=\(token)")
        #expect(redirect.status == 302)
        #expect(redirect.header("location") == "/q?a=1")
        let cookie = (redirect.header("set-cookie") ?? "").split(separator: ";").first.map(String.init) ?? ""
        let withCookie = try await RawHTTPClient.request(port: port, host: direct, "/q?a=1", headers: ["Cookie": cookie])
        #expect(withCookie.status == 200)
        #expect(ExposureServer.json(withCookie)["cookie"] is NSNull, "the gateway's cookie must not reach the sandbox")
        // Every request of a kept-alive connection needs it: a second without it ends the connection.
        let (first, cut) = try await RawHTTPClient.with(port: port) { connection in
            try await connection.send("GET /one HTTP/1.1\r\nHost: \(direct)\r\nx-omnirun-exposure-token: \(token)\r\n\r\n")
            let first = try await connection.readResponse()
            try await connection.send("GET /two HTTP/1.1\r\nHost: \(direct)\r\n\r\n")
            return (first.status, await connection.isClosed())
        }
        #expect(first == 200 && cut)
        // Another port of the sandbox is not private.
        #expect(try await RawHTTPClient.request(port: port, host: "\(id)-8001.localhost", "/").status == 200)

        // Revoked: the port is no longer private (the direct name is open again).
        #expect(try await client.delete("/sandboxes/\(id)/exposures/\(expID)").status == 204)
        #expect(try await RawHTTPClient.request(port: port, host: direct, "/again").status == 200)
        let revoked = try await RawHTTPClient.request(port: port, host: exposure["hostname"] as? String ?? "", "/")
        #expect(revoked.status == 404)
        Self.expectNoIDs(revoked, ids, "revoked")
    }

    @Test func gatewayErrorPagesNameNoSandbox() async throws {
        let (server, client) = try await ExposureServer.client("error-pages")
        let port = server.previewPort
        let id = try await createSandbox(client, ["template": "playground", "timeout": 1800])
        let exposure = try await client.post("/sandboxes/\(id)/exposures", ["port": 8123]).object
        let hostname = exposure["hostname"] as? String ?? ""
        let ids = [id, exposure["id"] as? String ?? ""]
        let nothingListening = try await RawHTTPClient.request(port: port, host: hostname, "/")
        #expect(nothingListening.status == 502)
        Self.expectNoIDs(nothingListening, ids, "nothing listening (exposure)")
        let direct = try await RawHTTPClient.request(port: port, host: "\(id)-8123.localhost", "/")
        #expect(direct.status == 502)
        Self.expectNoIDs(direct, ids, "nothing listening (direct)")
        let unknownID = String(id.dropLast(4)) + "zzzz"
        let unknown = try await RawHTTPClient.request(port: port, host: "\(unknownID)-8000.localhost", "/")
        #expect(unknown.status == 404)
        Self.expectNoIDs(unknown, ids + [unknownID], "unknown sandbox")
        #expect(try await client.post("/sandboxes/\(id)/exposures/\(ids[1])/refresh", ["requestedTtlSeconds": 1]).status == 200)
        try await Task.sleep(for: .seconds(2))
        let expired = try await RawHTTPClient.request(port: port, host: hostname, "/")
        #expect(expired.status == 410)
        Self.expectNoIDs(expired, ids, "expired")
        #expect(try await client.post("/sandboxes/\(id)/exposures/\(ids[1])/refresh", ["requestedTtlSeconds": 600]).status == 200)
        #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        let stopped = try await RawHTTPClient.request(port: port, host: hostname, "/")
        #expect(stopped.status == 502)
        Self.expectNoIDs(stopped, ids, "stopped")
        let gone = try await RawHTTPClient.request(port: port, host: "\(id)-8123.localhost", "/")
        #expect(gone.status == 404)
        Self.expectNoIDs(gone, ids, "ended sandbox, direct name")
    }
}
