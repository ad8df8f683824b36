import Crypto
import Foundation
import Testing

@testable import OmniCLI
import OmniRunE2EE

/// The CLI's side of wire protocol §12 against the server's side (`E2EEChannel.accept`, the
/// same code the server runs): the key pair kept on disk (0600) and found again, requests
/// sealed and bound to their route, answers opened only when sealed for this request.
@Suite(.serialized) final class E2EEKeysTests {
    static let folder: String = {
        let path = NSTemporaryDirectory() + "omni-e2ee-tests-\(getpid())"
        setenv("OMNI_CONFIG_DIR", path, 1)
        return path
    }()

    init() {}

    /// Each test leaves nothing behind.
    deinit { try? FileManager.default.removeItem(atPath: Self.folder) }

    /// A sandbox "created" here: the client's key pair, the server's answer, the saved file.
    func created(_ sandbox: String) throws -> (client: E2EEChannel, server: E2EEChannel) {
        _ = Self.folder
        let pair = E2EEKeys.generate()
        let server = try E2EEChannel.accept(clientPublicKey: pair.publicKey)
        try E2EEKeys.save(sandbox: sandbox, privateKey: pair.privateKey, serverPublicKey: server.serverPublicKey, apiUrl: "http://127.0.0.1:1")
        let client = try #require(try E2EEKeys.channel(sandbox: sandbox))
        return (client, server.channel)
    }

    @Test func theKeyPairIsKeptPrivatelyAndAgreesWithTheServer() throws {
        let (client, server) = try created("sb_keep1")
        #expect(client.keyBytes == server.keyBytes)
        let attributes = try FileManager.default.attributesOfItem(atPath: E2EEKeys.directory + "/sb_keep1.json")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let folder = try FileManager.default.attributesOfItem(atPath: E2EEKeys.directory)
        #expect((folder[.posixPermissions] as? Int) == 0o700)
        E2EEKeys.remove(sandbox: "sb_keep1")
        #expect(try E2EEKeys.channel(sandbox: "sb_keep1") == nil)
    }

    @Test func aSealedRequestOpensOnTheServerAndNamesItsRoute() throws {
        let (client, server) = try created("sb_seal1")
        let target = "POST /sandboxes/sb_seal1/commands"
        let body = try client.sealRequest(Data(#"{"command":"echo hi"}"#.utf8), target: target)
        struct Wrapper: Decodable { var _encrypted: E2EEChannel.Envelope }
        let envelope = try JSONDecoder().decode(Wrapper.self, from: body)._encrypted
        #expect(envelope.aad == target)
        #expect(String(decoding: try server.open(envelope).plaintext, as: UTF8.self) == #"{"command":"echo hi"}"#)
    }

    @Test func answersMustBeSealedForThisRequest() throws {
        let (client, server) = try created("sb_answer1")
        let target = "GET /sandboxes/sb_answer1/commands"
        let sealed = try JSONEncoder().encode(["_encrypted": try server.seal(Data("[]".utf8), aad: "response " + target)])
        #expect(try client.openResponse(sealed, request: target) == Data("[]".utf8))
        // An answer sealed for another request is refused (it cannot be swapped in).
        #expect(throws: CLIError.self) { try client.openResponse(sealed, request: "GET /sandboxes/sb_answer1/exposures") }
        // A plaintext answer where a sealed one is due is refused (no silent downgrade).
        #expect(throws: CLIError.self) { try client.openResponse(Data("[]".utf8), request: target) }
        // An answer sealed under another key does not open.
        let other = try created("sb_answer2").server
        let foreign = try JSONEncoder().encode(["_encrypted": try other.seal(Data("[]".utf8), aad: "response " + target)])
        #expect(throws: CLIError.self) { try client.openResponse(foreign, request: target) }
    }

    @Test func aSandboxIDThatNamesAnotherFileIsNeverUsedAsAPath() throws {
        _ = Self.folder
        for id in ["../credentials", "sb/../../x", "", ".", "a b", String(repeating: "a", count: 200)] {
            #expect(E2EEKeys.path(id) == nil)
            #expect(try E2EEKeys.channel(sandbox: id) == nil)
        }
        #expect(E2EEKeys.path("sb_abc-1") == E2EEKeys.directory + "/sb_abc-1.json")
    }

    @Test func aDamagedKeyFileIsReportedNotIgnored() throws {
        _ = Self.folder
        try FileManager.default.createDirectory(atPath: E2EEKeys.directory, withIntermediateDirectories: true)
        try Data("{\"privateKey\":\"nope\"}".utf8).write(to: URL(fileURLWithPath: E2EEKeys.directory + "/sb_broken.json"))
        #expect(throws: CLIError.self) { try E2EEKeys.channel(sandbox: "sb_broken") }
    }

    @Test func aServerKeyThatIsNotAP256KeyIsRefusedAtCreate() throws {
        _ = Self.folder
        let pair = E2EEKeys.generate()
        #expect(throws: CLIError.self) {
            try E2EEKeys.save(sandbox: "sb_badkey", privateKey: pair.privateKey, serverPublicKey: "bm90IGEga2V5", apiUrl: "http://x")
        }
        #expect(try E2EEKeys.channel(sandbox: "sb_badkey") == nil)
    }

    @Test func onlySandboxRoutesOfAKnownSandboxAreSealed() throws {
        _ = try created("sb_route1")
        let client = APIClient(baseURL: "http://127.0.0.1:1", apiKey: "k")
        #expect(try client.e2eeChannel("/sandboxes/sb_route1/commands") != nil)
        #expect(try client.e2eeChannel("/sandboxes/sb_route1/files/upload") == nil)   // multipart stays plaintext
        #expect(try client.e2eeChannel("/sandboxes/sb_route1") == nil)                // info and kill are not sealed
        #expect(try client.e2eeChannel("/sandboxes/sb_other/commands") == nil)
        #expect(try client.e2eeChannel("/llm/v1/chat/completions") == nil)
        #expect(APIClient.target("http://h:1/sandboxes/x/files?path=%2Ftmp%2Fa") == "/sandboxes/x/files?path=%2Ftmp%2Fa")
    }
}
