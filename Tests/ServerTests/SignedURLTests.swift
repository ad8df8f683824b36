import Foundation
import Testing
import TestSupport

/// Signed URLs against a real server and a real sandbox: a URL grants one method, one
/// path, one guest user and one sandbox until it expires; a request that differs in any of
/// them, in its query or in its form fields, is a 403 that writes nothing.
@Suite("Signed URLs", .serialized, .timeLimit(.minutes(10)))
struct SignedURLTests {
    static func exists(_ client: HTTPTestClient, _ id: String, _ path: String) async throws -> Bool {
        let reply = try await client.post(
            "/sandboxes/\(id)/commands", ["command": "test -e '\(path)' && echo yes || echo no", "user": "root"])
        return (reply.object["stdout"] as? String ?? "") == "yes\n"
    }

    /// Files the staging of refused uploads could leave behind.
    static func staged(_ client: HTTPTestClient, _ id: String) async throws -> String {
        let reply = try await client.post(
            "/sandboxes/\(id)/commands",
            ["command": "ls -a /tmp /etc/profile.d /home/user 2>/dev/null | grep omnirun-upload || true", "user": "root"])
        return reply.object["stdout"] as? String ?? "?"
    }

    /// A multipart body with the parts in the given order (a file part is one with a filename).
    static func form(_ parts: [(name: String, value: String, filename: String?)]) -> (Data, String) {
        let boundary = "signed-\(UUID().uuidString)"
        var body = Data()
        for part in parts {
            var head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(part.name)\""
            if let filename = part.filename { head += "; filename=\"\(filename)\"\r\nContent-Type: application/octet-stream" }
            body += Data((head + "\r\n\r\n" + part.value + "\r\n").utf8)
        }
        body += Data("--\(boundary)--\r\n".utf8)
        return (body, "multipart/form-data; boundary=\(boundary)")
    }

    @Test func aSignedURLAllowsExactlyWhatWasSigned() async throws {
        let server = try await TestServer.start(name: "signed", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
        do {
            let client = server.client()
            let anonymous = HTTPTestClient(baseURL: server.baseURL, apiKey: nil)
            let id = try await createSandbox(client)
            let evil = "/etc/profile.d/zz-evil.sh"

            // The attack as found: an upload URL for /tmp/in.txt, used with multipart fields
            // `path` and `user` naming a root-owned file.
            let minted = try await client.post("/sandboxes/\(id)/files/upload-url", ["path": "/tmp/in.txt", "method": "POST"])
            #expect(minted.status == 200 && minted.object["method"] as? String == "POST", "\(minted.text)")
            let uploadURL = minted.object["url"] as? String ?? ""
            let (attackBody, attackType) = Self.form([
                ("path", evil, nil), ("user", "root", nil), ("file", "echo owned-by-the-url-holder", "zz-evil.sh"),
            ])
            let (refused, footprint) = try await AttackFootprint.measure(
                "signed upload URL with extra multipart path/user fields", server: server, outcome: "refused (403), nothing written"
            ) {
                try await anonymous.request("POST", uploadURL, body: attackBody, contentType: attackType)
            }
            #expect(refused.status == 403, "\(refused.text)")
            #expect(refused.object["error"] as? String == "forbidden")
            #expect(try await !Self.exists(client, id, evil), "the attack wrote \(evil)")
            #expect(try await !Self.exists(client, id, "/tmp/in.txt"))
            #expect(footprint.descriptors.after <= footprint.descriptors.before + 2, "\(footprint.descriptors)")

            // The same fields after the file part: the file waited under a staging name and is gone.
            let (late, lateType) = Self.form([("file", "late", "in.txt"), ("path", evil, nil)])
            let lateReply = try await anonymous.request("POST", uploadURL, body: late, contentType: lateType)
            #expect(lateReply.status == 403, "\(lateReply.text)")
            #expect(try await !Self.exists(client, id, evil))
            #expect(try await !Self.exists(client, id, "/tmp/in.txt"), "a refused form wrote its file")
            #expect(try await Self.staged(client, id) == "", "staging files left behind")
            // An unknown part is refused too.
            let (extra, extraType) = Self.form([("mode", "4755", nil), ("file", "x", "in.txt")])
            #expect(try await anonymous.request("POST", uploadURL, body: extra, contentType: extraType).status == 403)

            // Fields that repeat the signed values are fine: written to the signed path as the default user.
            let (good, goodType) = Self.form([("path", "/tmp/in.txt", nil), ("file", "hello from a signed form", "in.txt")])
            let accepted = try await anonymous.request("POST", uploadURL, body: good, contentType: goodType)
            #expect(accepted.status == 200, "\(accepted.text)")
            #expect(accepted.object["owner"] as? String == "user", "\(accepted.text)")
            let read = try await client.get("/sandboxes/\(id)/files?path=%2Ftmp%2Fin.txt")
            #expect(read.object["content"] as? String == "hello from a signed form")
            #expect(try await Self.staged(client, id) == "")

            // Method swap: a PUT URL (the default) used with POST, a POST URL used with PUT, a download used to upload.
            let put = try await client.post("/sandboxes/\(id)/files/upload-url", ["path": "/tmp/put.txt"])
            let putURL = put.object["url"] as? String ?? ""
            #expect(put.object["method"] as? String == "PUT")
            let (plainForm, plainType) = Self.form([("file", "posted", "put.txt")])
            #expect(try await anonymous.request("POST", putURL, body: plainForm, contentType: plainType).status == 403)
            #expect(try await anonymous.request("PUT", uploadURL, body: Data("x".utf8), contentType: "text/plain").status == 403)
            #expect(try await !Self.exists(client, id, "/tmp/put.txt"))
            let putOK = try await anonymous.request("PUT", putURL, body: Data("put-body".utf8), contentType: "application/octet-stream")
            #expect(putOK.status == 200, "\(putOK.text)")
            let download = try await client.post("/sandboxes/\(id)/files/download-url", ["path": "/tmp/in.txt"])
            let downloadURL = download.object["url"] as? String ?? ""
            #expect(try await anonymous.request("GET", downloadURL).text == "hello from a signed form")
            #expect(try await anonymous.request("POST", downloadURL, body: Data(), contentType: "text/plain").status == 403)
            #expect(try await anonymous.request("PUT", downloadURL, body: Data("x".utf8), contentType: "text/plain").status == 403)
            #expect(try await anonymous.request("GET", putURL).status == 403)
            #expect(try await anonymous.request("GET", downloadURL.replacingOccurrences(of: "/files/download?", with: "/files/upload?")).status == 403)

            // The query: another user, another path, a second path, an extra name: all 403.
            let asRoot = try await anonymous.request("GET", downloadURL + "&user=root")
            #expect(asRoot.status == 403, "\(asRoot.text)")
            #expect(try await anonymous.request("GET", downloadURL.replacingOccurrences(of: "in.txt", with: "put.txt")).status == 403)
            #expect(try await anonymous.request("GET", downloadURL + "&path=%2Fetc%2Fshadow").status == 403)
            #expect(try await anonymous.request("GET", downloadURL + "&recursive=true").status == 403)
            #expect(try await anonymous.request("PUT", putURL + "&user=root", body: Data("x".utf8), contentType: "text/plain").status == 403)
            // A URL minted for root reads root's files, and only as root.
            _ = try await client.post("/sandboxes/\(id)/commands", ["command": "echo root-only > /root/secret && chmod 600 /root/secret", "user": "root"])
            let rootURL = try await client.post("/sandboxes/\(id)/files/download-url", ["path": "/root/secret", "user": "root"])
            let rootDownload = rootURL.object["url"] as? String ?? ""
            #expect(rootDownload.contains("user=root"))
            #expect(try await anonymous.request("GET", rootDownload).text == "root-only\n")
            #expect(try await anonymous.request("GET", rootDownload.replacingOccurrences(of: "user=root", with: "user=user")).status == 403)
            // Minting: the key holder's own choices are checked.
            #expect(try await client.post("/sandboxes/\(id)/files/download-url", ["path": "/tmp/in.txt", "method": "PUT"]).status == 400)
            #expect(try await client.post("/sandboxes/\(id)/files/upload-url", ["path": "/tmp/in.txt", "method": "DELETE"]).status == 400)
            #expect(try await client.post("/sandboxes/\(id)/files/upload-url", ["path": "/tmp/in.txt", "user": "r@@t"]).status == 400)

            // Another sandbox of the same account: the URL does not reach it.
            let other = try await createSandbox(client)
            let elsewhere = downloadURL.replacingOccurrences(of: "/sandboxes/\(id)/", with: "/sandboxes/\(other)/")
            #expect(try await anonymous.request("GET", elsewhere).status == 403)
            _ = try await client.delete("/sandboxes/\(other)")

            // Expiry.
            let short = try await client.post("/sandboxes/\(id)/files/download-url", ["path": "/tmp/in.txt", "expiresIn": 1])
            try await Task.sleep(for: .seconds(2.2))
            let expired = try await anonymous.request("GET", short.object["url"] as? String ?? "")
            #expect(expired.status == 403)
            #expect((expired.object["message"] as? String)?.contains("expired") == true, "\(expired.text)")
            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
