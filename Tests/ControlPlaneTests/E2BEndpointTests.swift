import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import OmniRunServer

/// The E2B-compatible endpoint (`/e2b`) against what a key holder or the public can send:
/// control routes without or with another account's key, sandbox routes without, with a
/// forged or another sandbox's token, and Connect messages that are malformed, oversized,
/// compressed or binary. Every refusal has E2B's error shape for its route.
@Suite("Control plane: the E2B-compatible endpoint")
struct E2BEndpointTests {
    struct E2BError: Decodable {
        var code: Int
        var message: String
    }

    struct ConnectFailure: Decodable {
        var code: String
        var message: String
    }

    struct Created: Decodable {
        var sandboxID: String
        var templateID: String
        var envdVersion: String
        var envdAccessToken: String
        var trafficAccessToken: String?
    }

    func send(
        _ plane: ControlPlane, _ method: HTTPRequest.Method, _ path: String, headers extra: [String: String] = [:],
        body: ByteBuffer? = nil
    ) async throws -> ControlPlane.Reply {
        var headers: HTTPFields = [:]
        for (name, value) in extra { headers[.init(name)!] = value }
        let response = try await plane.client.executeRequest(uri: path, method: method, headers: headers, body: body)
        return ControlPlane.Reply(status: Int(response.status.code), body: Array(response.body.readableBytesView))
    }

    func create(_ plane: ControlPlane, key: String? = nil) async throws -> Created {
        let reply = try await send(
            plane, .post, "/e2b/v2/sandboxes", headers: ["X-API-Key": key ?? plane.ownerKey, "Content-Type": "application/json"],
            body: ByteBuffer(string: #"{"templateID":"base","timeout":120,"metadata":{"k":"v"},"envVars":{"A":"1"}}"#))
        try #require(reply.status == 201, "create answered \(reply)")
        return try reply.decode()
    }

    /// The headers of a sandbox route (as the SDK sends them with E2B_SANDBOX_URL).
    func sandboxHeaders(_ sandbox: String, token: String, type: String? = nil) -> [String: String] {
        var headers = ["E2b-Sandbox-Id": sandbox, "E2b-Sandbox-Port": "49983", "X-Access-Token": token]
        if let type { headers["Content-Type"] = type }
        return headers
    }

    static func envelope(_ json: String, flags: UInt8 = 0, claimedLength: UInt32? = nil) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(flags)
        buffer.writeInteger(claimedLength ?? UInt32(json.utf8.count))
        buffer.writeString(json)
        return buffer
    }

    @Test func controlRoutesTakeAnOmniRunKeyAndAnswerWithE2BErrors() async throws {
        try await ControlPlane.run { plane in
            // No key, a wrong key: 401 with E2B's {code, message} (the SDK parses every error as that).
            let none = try await send(plane, .post, "/e2b/v2/sandboxes", body: ByteBuffer(string: "{}"))
            #expect(none.status == 401)
            #expect(try none.decode(E2BError.self).code == 401)
            let wrong = try await send(plane, .get, "/e2b/v2/sandboxes", headers: ["X-API-Key": "omr_" + String(repeating: "x", count: 40)])
            #expect(wrong.status == 401)
            #expect(try await send(plane, .get, "/e2b/v2/sandboxes", headers: ["X-API-Key": String(repeating: "k", count: 10_000)]).status == 401)

            let created = try await create(plane)
            #expect(created.envdVersion == "0.5.7")
            #expect(created.envdAccessToken.count == 64 && created.envdAccessToken.allSatisfy(\.isHexDigit))
            let info = try await send(plane, .get, "/e2b/sandboxes/\(created.sandboxID)", headers: ["X-API-Key": plane.ownerKey])
            #expect(info.status == 200, "\(info)")
            #expect(info.text.contains(#""state":"running""#))

            // Another account sees nothing of it: 404 everywhere, and no token handed out.
            let other = try await plane.createAccount("e2b-other@example.com")
            for (method, path) in [
                (HTTPRequest.Method.get, "/e2b/sandboxes/\(created.sandboxID)"), (.delete, "/e2b/sandboxes/\(created.sandboxID)"),
                (.post, "/e2b/v2/sandboxes/\(created.sandboxID)/connect"), (.post, "/e2b/sandboxes/\(created.sandboxID)/pause"),
            ] {
                let reply = try await send(
                    plane, method, path, headers: ["X-API-Key": other, "Content-Type": "application/json"], body: ByteBuffer(string: "{}"))
                #expect(reply.status == 404, "\(method) \(path): \(reply)")
                #expect(!reply.text.contains(created.envdAccessToken))
            }
            let listed = try await send(plane, .get, "/e2b/v2/sandboxes", headers: ["X-API-Key": other])
            #expect(listed.status == 200 && listed.text == "[]", "\(listed)")

            // Bad input is a clear 4xx; what OmniRun does not offer is a 501 that says so.
            for body in [#"{"timeout":-5}"#, #"{"envVars":{"1BAD":"x"}}"#, #"{"templateID":"../../etc"}"#, "[1,2", #"{"timeout":1e300}"#] {
                let reply = try await send(
                    plane, .post, "/e2b/v2/sandboxes", headers: ["X-API-Key": plane.ownerKey, "Content-Type": "application/json"],
                    body: ByteBuffer(string: body))
                #expect((400..<500).contains(reply.status), "\(body): \(reply)")
                #expect(try reply.decode(E2BError.self).code == reply.status)
            }
            for body in [#"{"mcp":{}}"#, #"{"network":{"allowOut":["1.1.1.1"]}}"#, #"{"autoResume":{"enabled":true}}"#] {
                let reply = try await send(
                    plane, .post, "/e2b/v2/sandboxes", headers: ["X-API-Key": plane.ownerKey, "Content-Type": "application/json"],
                    body: ByteBuffer(string: body))
                #expect(reply.status == 501, "\(body): \(reply)")
            }
            let fork = try await send(plane, .post, "/e2b/sandboxes/\(created.sandboxID)/fork", headers: ["X-API-Key": plane.ownerKey])
            #expect(fork.status == 501 && fork.text.contains("fork"))
            // A malformed list filter and cursor are 400s.
            for query in ["state=deleted", "nextToken=%%%", "limit=-1"] {
                let reply = try await send(plane, .get, "/e2b/v2/sandboxes?\(query)", headers: ["X-API-Key": plane.ownerKey])
                #expect(reply.status == 400, "\(query): \(reply)")
            }

            // Pause twice: the second is E2B's 409 (the SDK reads it as "already paused").
            let pause = try await send(plane, .post, "/e2b/sandboxes/\(created.sandboxID)/pause", headers: ["X-API-Key": plane.ownerKey])
            #expect(pause.status == 204, "\(pause)")
            let again = try await send(plane, .post, "/e2b/sandboxes/\(created.sandboxID)/pause", headers: ["X-API-Key": plane.ownerKey])
            #expect(again.status == 409)
            let resumed = try await send(
                plane, .post, "/e2b/v2/sandboxes/\(created.sandboxID)/connect",
                headers: ["X-API-Key": plane.ownerKey, "Content-Type": "application/json"], body: ByteBuffer(string: #"{"timeout":60}"#))
            #expect(resumed.status == 201, "\(resumed)")
            let kill = try await send(plane, .delete, "/e2b/sandboxes/\(created.sandboxID)", headers: ["X-API-Key": plane.ownerKey])
            #expect(kill.status == 204)
            #expect(try await send(plane, .delete, "/e2b/sandboxes/\(created.sandboxID)", headers: ["X-API-Key": plane.ownerKey]).status == 404)
        }
    }

    @Test func sandboxRoutesTakeThatSandboxsTokenOnly() async throws {
        try await ControlPlane.run { plane in
            let a = try await create(plane)
            let b = try await create(plane)
            let path = "/e2b/files?path=/etc/hostname"
            // No sandbox header, no token, a forged token, B's token for A, a token one digit off.
            #expect(try await send(plane, .get, path).status == 400)
            #expect(try await send(plane, .get, path, headers: ["E2b-Sandbox-Id": a.sandboxID]).status == 401)
            let forged = String(repeating: "0", count: 64)
            var offByOne = Array(a.envdAccessToken)
            offByOne[63] = offByOne[63] == "0" ? "1" : "0"
            for token in [forged, b.envdAccessToken, String(offByOne), String(repeating: "a", count: 100_000), a.envdAccessToken.uppercased()] {
                let reply = try await send(plane, .get, path, headers: sandboxHeaders(a.sandboxID, token: token))
                #expect(reply.status == 401, "token \(token.prefix(8))…: \(reply.status)")
            }
            // The code interpreter's context calls carry the traffic token instead; it opens the same sandbox only.
            let contexts = try await send(
                plane, .get, "/e2b/contexts", headers: ["E2b-Sandbox-Id": a.sandboxID, "E2B-Traffic-Access-Token": b.envdAccessToken])
            #expect(contexts.status == 401)
            // Ids that are no sandbox, and a sandbox that ended: E2B's 502 "was not found".
            for id in ["../../etc/passwd", "sb_nothere0", String(repeating: "z", count: 5000)] {
                let reply = try await send(plane, .get, path, headers: sandboxHeaders(id, token: a.envdAccessToken))
                #expect([401, 502].contains(reply.status), "\(id.prefix(20)): \(reply)")
            }
            _ = try await send(plane, .delete, "/e2b/sandboxes/\(b.sandboxID)", headers: ["X-API-Key": plane.ownerKey])
            let gone = try await send(plane, .get, path, headers: sandboxHeaders(b.sandboxID, token: b.envdAccessToken))
            #expect(gone.status == 502)
            #expect(try gone.decode(E2BError.self).message.contains("was not found"))
            // The right token: files go in (multipart, one part per file) and come back.
            let boundary = "XyZ"
            let form =
                "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/tmp/one.txt\"\r\n\r\nONE\r\n"
                + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/tmp/two.txt\"\r\n\r\nTWO\r\n--\(boundary)--\r\n"
            let upload = try await send(
                plane, .post, "/e2b/files",
                headers: sandboxHeaders(a.sandboxID, token: a.envdAccessToken, type: "multipart/form-data; boundary=\(boundary)"),
                body: ByteBuffer(string: form))
            #expect(upload.status == 200, "\(upload)")
            #expect(upload.text.contains("/tmp/one.txt") && upload.text.contains("/tmp/two.txt"))
            let read = try await send(plane, .get, "/e2b/files?path=/tmp/two.txt", headers: sandboxHeaders(a.sandboxID, token: a.envdAccessToken))
            #expect(read.status == 200 && read.text == "TWO", "\(read)")
            let missing = try await send(plane, .get, "/e2b/files?path=/tmp/none", headers: sandboxHeaders(a.sandboxID, token: a.envdAccessToken))
            #expect(missing.status == 404, "\(missing)")
            #expect(try missing.decode(E2BError.self).code == 404)
            // Compressed uploads and file metadata are refused, not written wrong.
            var gzip = sandboxHeaders(a.sandboxID, token: a.envdAccessToken, type: "application/octet-stream")
            gzip["Content-Encoding"] = "gzip"
            #expect(try await send(plane, .post, "/e2b/files?path=/tmp/g", headers: gzip, body: ByteBuffer(string: "x")).status == 400)
            var metadata = sandboxHeaders(a.sandboxID, token: a.envdAccessToken, type: "application/octet-stream")
            metadata["X-Metadata-Owner"] = "me"
            #expect(try await send(plane, .post, "/e2b/files?path=/tmp/m", headers: metadata, body: ByteBuffer(string: "x")).status == 501)
        }
    }

    @Test func connectMessagesAreCheckedBeforeAnythingRuns() async throws {
        try await ControlPlane.run { plane in
            let a = try await create(plane)
            let json = sandboxHeaders(a.sandboxID, token: a.envdAccessToken, type: "application/json")
            func unary(_ method: String, _ body: String, headers: [String: String]? = nil) async throws -> ControlPlane.Reply {
                try await send(plane, .post, "/e2b/\(method)", headers: headers ?? json, body: ByteBuffer(string: body))
            }
            // Binary protobuf is answered in binary; gRPC is a 415 with Connect's error.
            var proto = json
            proto["Content-Type"] = "application/proto"
            let binary = try await unary("filesystem.Filesystem/Stat", "\u{0a}\u{01}/", headers: proto)
            #expect(binary.status == 200, "\(binary)")
            let entry = ProtoJSON(value: try ProtoBinary.decode(binary.body, schema: EnvdSchemas.entryResponse))
            #expect(try entry["entry"]?["type"]?.string("type") == "FILE_TYPE_DIRECTORY")
            #expect(try await unary("filesystem.Filesystem/Stat", "\u{0a}\u{01}", headers: proto).status == 400)
            var grpc = json
            grpc["Content-Type"] = "application/grpc+proto"
            let refused = try await unary("filesystem.Filesystem/Stat", "", headers: grpc)
            #expect(refused.status == 415)
            #expect(try refused.decode(ConnectFailure.self).code == "unimplemented")
            // Malformed and out-of-range messages: invalid_argument, nothing run.
            let bad: [(String, String)] = [
                ("filesystem.Filesystem/Stat", "{"), ("filesystem.Filesystem/Stat", "[]"), ("filesystem.Filesystem/Stat", #"{"path":5}"#),
                ("filesystem.Filesystem/ListDir", #"{"path":"/","depth":"99999999999999999999999"}"#),
                ("filesystem.Filesystem/ListDir", #"{"path":"/","depth":1e300}"#),
                ("process.Process/SendSignal", #"{"process":{"pid":4294967296},"signal":"SIGNAL_SIGKILL"}"#),
                ("process.Process/SendSignal", #"{"process":{"pid":1},"signal":"SIGNAL_SIGSTOP"}"#),
                ("process.Process/SendInput", #"{"process":{"pid":-1},"input":{"stdin":"YQ=="}}"#),
                ("process.Process/SendInput", #"{"process":{"pid":1},"input":{"stdin":"***"}}"#),
                ("process.Process/Update", #"{"process":{"pid":1},"pty":{"size":{"cols":0,"rows":100000}}}"#),
                ("filesystem.Filesystem/GetWatcherEvents", #"{"watcherId":""}"#),
            ]
            for (method, body) in bad {
                let reply = try await unary(method, body)
                #expect(reply.status == 400, "\(method) \(body): \(reply)")
                #expect(try reply.decode(ConnectFailure.self).code == "invalid_argument", "\(method) \(body)")
            }
            // A user name that is no name, in the Basic header the SDK sends.
            var user = json
            user["Authorization"] = "Basic " + Data("../../root:".utf8).base64EncodedString()
            #expect(try await unary("filesystem.Filesystem/Stat", #"{"path":"/"}"#, headers: user).status == 400)
            // Another sandbox's watcher id is not found here.
            #expect(try await unary("filesystem.Filesystem/RemoveWatcher", #"{"watcherId":"w0123"}"#).status == 404)

            // Streams: a message claiming 4 GiB, a compressed one, and one that is not JSON.
            let stream = sandboxHeaders(a.sandboxID, token: a.envdAccessToken, type: "application/connect+json")
            let start = #"{"process":{"cmd":"/bin/true"}}"#
            let huge = try await send(
                plane, .post, "/e2b/process.Process/Start", headers: stream, body: Self.envelope(start, claimedLength: .max))
            #expect(huge.status == 429, "\(huge)")
            #expect(try huge.decode(ConnectFailure.self).code == "resource_exhausted")
            let compressed = try await send(plane, .post, "/e2b/process.Process/Start", headers: stream, body: Self.envelope(start, flags: 1))
            #expect(compressed.status == 501, "\(compressed)")
            let garbage = try await send(plane, .post, "/e2b/process.Process/Start", headers: stream, body: Self.envelope("not json"))
            #expect(garbage.status == 400, "\(garbage)")
            let badEnv = try await send(
                plane, .post, "/e2b/process.Process/Start", headers: stream,
                body: Self.envelope(#"{"process":{"cmd":"/bin/true","envs":{"A=B":"x"}}}"#))
            #expect(badEnv.status == 400, "\(badEnv)")
            // A stream call sent as unary JSON is refused for its content type.
            #expect(try await unary("process.Process/Start", start).status == 415)
        }
    }

    @Test func anEndToEndEncryptedSandboxIsNotReachableThroughIt() async throws {
        try await ControlPlane.run { plane in
            let client = P256.KeyAgreement.PrivateKey()
            let body = #"{"e2ee": true, "clientPublicKey": "\#(client.publicKey.derRepresentation.base64EncodedString())"}"#
            let sealed = try await plane.createSandbox(body)
            let info = try await send(plane, .get, "/e2b/sandboxes/\(sealed.sandboxID)", headers: ["X-API-Key": plane.ownerKey])
            #expect(info.status == 403, "\(info)")
            #expect(!info.text.contains("envdAccessToken"))
        }
    }
}
