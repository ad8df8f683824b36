import Crypto
import Foundation
import OmniRunError
import Testing
import TestSupport

@testable import OmniRunControl
@testable import OmniRunServer
import OmniRunE2EE

/// Runs scripts/testdata/e2ee-client.py (Python's `cryptography`, written apart from the
/// server) and returns its JSON.
func e2eeClient(_ arguments: String...) async throws -> [String: Any] {
    try parseE2EEClient(try await e2eeClientOutput(arguments), arguments)
}

func e2eeClientOutput(_ arguments: [String]) async throws -> String {
    let python = try Python.interpreter(importing: "cryptography")
    return try await Python.run(python, Python.script("e2ee-client.py"), arguments)
}

/// Creates are admitted a few at a time across the suite (see `CreateGate`).
func gatedE2EEClient(_ arguments: String...) async throws -> [String: Any] {
    let output = try await CreateGate.shared.run { try await e2eeClientOutput(arguments) }
    return try parseE2EEClient(output, arguments)
}

func parseE2EEClient(_ output: String, _ arguments: [String]) throws -> [String: Any] {
    guard let object = (try? JSONSerialization.jsonObject(with: Data(output.utf8))) as? [String: Any], object["ok"] as? Bool == true
    else {
        throw TestSetupError("e2ee-client.py \(arguments.first ?? "") printed \(output)")
    }
    return object
}

private func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        bytes.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

@Suite("E2EE known answers (vectors from Python's cryptography)")
struct E2EEVectorTests {
    @Test func keyAgreementDerivationAndEnvelopesMatchPython() async throws {
        let vectors = try await e2eeClient("vectors")
        let cases = vectors["cases"] as? [[String: Any]] ?? []
        #expect(cases.count == 5)
        for vector in cases {
            let client = try P256.KeyAgreement.PrivateKey(rawRepresentation: hex(vector["clientPrivate"] as? String ?? ""))
            let server = try P256.KeyAgreement.PrivateKey(rawRepresentation: hex(vector["serverPrivate"] as? String ?? ""))
            // The wire encoding of public keys, bit for bit (base64 DER SPKI, 124 characters).
            #expect(server.publicKey.derRepresentation.base64EncodedString() == vector["serverPublicKey"] as? String)
            #expect(client.publicKey.derRepresentation.base64EncodedString() == vector["clientPublicKey"] as? String)
            let parsed = try E2EEChannel.publicKey(vector["clientPublicKey"] as? String ?? "")
            // The ECDH secret (X coordinate) and the HKDF output.
            let secret = try server.sharedSecretFromKeyAgreement(with: parsed)
            #expect(secret.withUnsafeBytes { Array($0) } == hex(vector["sharedSecret"] as? String ?? ""))
            let channel = try E2EEChannel.derive(privateKey: server, peer: parsed)
            #expect(channel.keyBytes == hex(vector["key"] as? String ?? ""))
            for item in vector["envelopes"] as? [[String: Any]] ?? [] {
                let plaintext = Data(base64Encoded: item["plaintext"] as? String ?? "") ?? Data()
                let fields = item["envelope"] as? [String: String] ?? [:]
                let envelope = E2EEChannel.Envelope(
                    alg: fields["alg"] ?? "", nonce: fields["nonce"] ?? "", ciphertext: fields["ciphertext"] ?? "", aad: fields["aad"])
                // Python's envelope opens here...
                let opened = try channel.open(envelope)
                #expect(opened.plaintext == plaintext)
                #expect(opened.nonce == Array(Data(base64Encoded: envelope.nonce) ?? Data()))
                // ...and the same plaintext and nonce seal to Python's bytes exactly.
                let sealed = try channel.seal(plaintext, nonce: opened.nonce, aad: envelope.aad)
                #expect(sealed == envelope)
            }
        }
    }

    @Test func handshakeAnswersAKeyTheClientCanUse() throws {
        let client = P256.KeyAgreement.PrivateKey()
        let (channel, serverPublicKey) = try E2EEChannel.accept(
            clientPublicKey: client.publicKey.derRepresentation.base64EncodedString())
        #expect(serverPublicKey.count == 124)
        let clientSide = try E2EEChannel.derive(privateKey: client, peer: try E2EEChannel.publicKey(serverPublicKey))
        #expect(clientSide.keyBytes == channel.keyBytes)
        // Every seal takes a fresh nonce.
        #expect(try channel.seal(Data("{}".utf8)).nonce != channel.seal(Data("{}".utf8)).nonce)
    }

    @Test func malformedEnvelopesAreClearInvalidArguments() throws {
        let channel = E2EEChannel(keyBytes: Array(repeating: 7, count: 32))
        let good = try channel.seal(Data("{\"a\":1}".utf8))
        var cases: [(E2EEChannel.Envelope, String)] = []
        cases.append((E2EEChannel.Envelope(alg: "ChaCha20", nonce: good.nonce, ciphertext: good.ciphertext), "unsupported"))
        cases.append((E2EEChannel.Envelope(alg: good.alg, nonce: "AAAA", ciphertext: good.ciphertext), "12 bytes"))
        cases.append((E2EEChannel.Envelope(alg: good.alg, nonce: "!!", ciphertext: good.ciphertext), "base64"))
        cases.append((E2EEChannel.Envelope(alg: good.alg, nonce: good.nonce, ciphertext: "AAAA"), "tag"))
        cases.append((E2EEChannel.Envelope(alg: good.alg, nonce: good.nonce, ciphertext: good.ciphertext, aad: "x"), "authenticate"))
        for (envelope, words) in cases {
            do {
                _ = try channel.open(envelope)
                Issue.record("opened a bad envelope: \(envelope)")
            } catch let error as OmniRunError {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains(words), "\(error.message)")
            }
        }
        #expect(throws: OmniRunError.self) { try E2EEChannel.publicKey("bm90IGEga2V5") }
        // Sealed keys open only for their own sandbox and master key.
        let sealer = E2EEKeySealer(masterKey: SymmetricKey(size: .bits256))
        let sealed = try sealer.seal(channel.keyBytes, sandboxID: "sbx_a")
        #expect(try sealer.open(sealed, sandboxID: "sbx_a") == channel.keyBytes)
        #expect(throws: OmniRunError.self) { try sealer.open(sealed, sandboxID: "sbx_b") }
        #expect(throws: OmniRunError.self) { try E2EEKeySealer(masterKey: SymmetricKey(size: .bits256)).open(sealed, sandboxID: "sbx_a") }
    }
}

@Suite("E2EE transport over a real server", .serialized, .timeLimit(.minutes(10)))
struct E2EETransportTests {
    @Test func everyBodyEncryptedByAnIndependentClient() async throws {
        let server = try await TestServer.start(name: "e2ee", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"], logLevel: "debug")
        do {
            let result = try await gatedE2EEClient("cycle", server.baseURL, server.ownerKey, "playground")
            #expect(result["serverPublicKeyLength"] as? Int == 124)
            let command = result["command"] as? [String: Any] ?? [:]
            #expect(command["status"] as? Int == 200)
            #expect(command["rawKeys"] as? [String] == ["_encrypted"], "the answer travels sealed: \(command)")
            #expect(command["stdout"] as? String == "secret-42\n")
            // The answer is bound to its request: aad "response POST /sandboxes/{id}/commands".
            #expect(command["aad"] as? String == command["expectedAad"] as? String, "\(command)")
            #expect((result["write1"] as? [String: Any])?["encrypted"] as? Bool == true)
            #expect((result["write2"] as? [String: Any])?["status"] as? Int == 200, "an envelope with aad")
            let read = result["read"] as? [String: Any] ?? [:]
            #expect(read["encrypted"] as? Bool == true)
            #expect(read["content"] as? String == "second version \u{2713}")
            #expect(read["aadMatches"] as? Bool == true, "a GET's answer names its query too")
            #expect((result["mkdir"] as? [String: Any])?["status"] as? Int == 200 && result["undoMkdir"] as? Int == 204)
            let batch = result["batch"] as? [String: Any] ?? [:]
            #expect(batch["isArray"] as? Bool == true)
            #expect(batch["paths"] as? [String] == ["/tmp/e2ee/b.txt"])
            #expect((result["list"] as? [String: Any])?["names"] as? [String] == ["a.txt", "b.txt"])
            let upload = result["upload"] as? [String: Any] ?? [:]
            #expect(upload["status"] as? Int == 200 && upload["plaintextAnswer"] as? Bool == true, "multipart stays plaintext: \(upload)")
            #expect(result["uploadReadBack"] as? String == "uploaded-bytes")

            let attacks = result["attacks"] as? [String: [String: Any]] ?? [:]
            #expect(attacks.count == 19)
            for (name, answer) in attacks {
                #expect(answer["status"] as? Int == 400, "\(name): \(answer)")
                #expect(answer["error"] as? String == "invalid_argument", "\(name): \(answer)")
            }
            let messages = attacks.mapValues { $0["message"] as? String ?? "" }
            #expect(messages["replay"]?.contains("replayed") == true, "\(messages["replay"] ?? "")")
            // An answer carries aad "response …": it can never pass as a request.
            #expect(messages["reflectedAnswer"]?.contains("bound to another request") == true, "\(messages["reflectedAnswer"] ?? "")")
            // Without aad (as the public SDK sends), a captured envelope is held to its nonce on every route.
            #expect(messages["replayOtherRoute"]?.contains("replayed") == true, "\(messages["replayOtherRoute"] ?? "")")
            #expect(messages["aadOtherRoute"]?.contains("bound to another request") == true, "\(messages["aadOtherRoute"] ?? "")")
            #expect(messages["aadOtherSandbox"]?.contains("bound to another request") == true)
            #expect(messages["plaintextBody"]?.contains("plaintext bodies are refused") == true)
            #expect(messages["unknownAlg"]?.contains("unsupported e2ee algorithm") == true)
            #expect(messages["nonce8Bytes"]?.contains("12 bytes, got 8") == true)
            #expect(messages["tamperedCiphertext"]?.contains("does not authenticate") == true)
            let after = result["afterAttacks"] as? [String: Any] ?? [:]
            #expect(after["content"] as? String == "second version \u{2713}", "the replayed first write changed nothing")
            #expect(after["ls"] as? String == "a.txt\nb.txt\ndir\nup.bin\n", "no attack ran its command (nor wrote x)")
            #expect(after["fresh"] as? String == "still-fine\n")
            let handlerError = result["handlerError"] as? [String: Any] ?? [:]
            #expect(handlerError["status"] as? Int == 400 && handlerError["plaintext"] as? Bool == true)
            // A client without the key reads plaintext answers and cannot act (a clear 400).
            let keylessRead = result["keylessRead"] as? [String: Any] ?? [:]
            #expect(keylessRead["status"] as? Int == 200 && keylessRead["sealed"] as? Bool == false, "\(keylessRead)")
            #expect(keylessRead["content"] as? String == "second version \u{2713}")
            #expect((result["keylessList"] as? [String: Any])?["isArray"] as? Bool == true)
            let keylessWrite = result["keylessWrite"] as? [String: Any] ?? [:]
            #expect(keylessWrite["status"] as? Int == 400, "\(keylessWrite)")
            #expect((keylessWrite["message"] as? String ?? "").contains("can read this sandbox but not act in it"), "\(keylessWrite)")
            #expect(result["keylessWriteRan"] as? String == "no\n")
            #expect(result["kill"] as? Int == 204)

            let plain = result["plain"] as? [String: Any] ?? [:]
            #expect(plain["serverPublicKey"] is NSNull || plain["serverPublicKey"] == nil)
            #expect((plain["command"] as? [String: Any])?["stdout"] as? String == "plain-ok\n")
            #expect(plain["write"] as? Int == 200)
            #expect(plain["read"] as? String == "plain file")
            for (name, answer) in result["badHandshakes"] as? [String: [String: Any]] ?? [:] {
                #expect(answer["status"] as? Int == 400, "\(name): \(answer)")
            }
            // Nothing secret in the server's log, even at debug level.
            let log = server.fullLog()
            let key = result["keyHex"] as? String ?? "missing"
            #expect(!log.contains(key))
            #expect(!log.contains(Data(hex(key)).base64EncodedString()))
            #expect(!log.contains("second version"))
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test func theKeySurvivesARestartSealedAndGoesWithTheSandbox() async throws {
        let server = try await TestServer.start(name: "e2ee-restart", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
        do {
            let created = try await gatedE2EEClient("create", server.baseURL, server.ownerKey, "playground")
            let id = created["sandboxID"] as? String ?? ""
            let privateKey = created["clientPrivate"] as? String ?? ""
            let serverKey = created["serverPublicKey"] as? String ?? ""
            let before = try await e2eeClient("run", server.baseURL, server.ownerKey, id, privateKey, serverKey, "echo before")
            #expect(before["stdout"] as? String == "before\n", "\(before)")

            server.crash()
            try await server.restart()
            let after = try await e2eeClient("run", server.baseURL, server.ownerKey, id, privateKey, serverKey, "echo after")
            #expect(after["stdout"] as? String == "after\n", "\(after)\nserver log: \(server.log())")
            // The nonces were kept across the crash: the envelope sent before it is still a replay.
            let replayed = try await e2eeClient(
                "post", server.baseURL, server.ownerKey, "/sandboxes/\(id)/commands", before["sentBody"] as? String ?? "")
            #expect(replayed["status"] as? Int == 400, "\(replayed)")
            #expect((replayed["message"] as? String)?.contains("replayed") == true, "\(replayed)")
            // Still e2ee after the restart: plaintext is refused.
            let plain = try await server.client().request("POST", "/sandboxes/\(id)/commands", json: ["command": "echo x"])
            #expect(plain.status == 400, "\(plain.text)")
            // The stored key is sealed: one row, and the key's bytes are nowhere in the database files.
            #expect(try await Self.storedKeys(server) == [id])
            let key = try E2EEChannel.derive(
                privateKey: P256.KeyAgreement.PrivateKey(rawRepresentation: hex(privateKey)),
                peer: E2EEChannel.publicKey(serverKey)
            ).keyBytes
            for suffix in ["", "-wal"] {
                let file = (try? Data(contentsOf: URL(fileURLWithPath: server.dataDirectory + "/omnirun.db" + suffix))) ?? Data()
                #expect(file.range(of: Data(key)) == nil)
                #expect(file.range(of: Data(Data(key).base64EncodedString().utf8)) == nil)
            }

            #expect(try await server.client().request("DELETE", "/sandboxes/\(id)").status == 204)
            #expect(try await Self.storedKeys(server) == [], "the key goes with its sandbox")
            server.crash()
            try await server.restart()
            let gone = try await e2eeClient("run", server.baseURL, server.ownerKey, id, privateKey, serverKey, "echo gone")
            #expect(gone["status"] as? Int == 404)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    /// A paused e2ee sandbox keeps its key across a server restart: after the resume it
    /// still refuses plaintext and answers sealed envelopes (it is not downgraded).
    @Test func aPausedSandboxKeepsItsKeyAcrossARestart() async throws {
        let server = try await TestServer.start(name: "e2ee-paused", environment: ["OMNIRUN_IDLE_TIMEOUT": "600"])
        do {
            let created = try await gatedE2EEClient("create", server.baseURL, server.ownerKey, "playground")
            let id = created["sandboxID"] as? String ?? ""
            let privateKey = created["clientPrivate"] as? String ?? ""
            let serverKey = created["serverPublicKey"] as? String ?? ""
            let client = server.client()
            #expect(try await client.request("POST", "/sandboxes/\(id)/pause").status == 200)
            server.crash()
            try await server.restart()
            #expect(try await Self.storedKeys(server) == [id], "the paused sandbox's key was deleted at the restart")
            #expect(try await client.request("POST", "/sandboxes/\(id)/resume").status == 200)
            let plain = try await client.request("POST", "/sandboxes/\(id)/commands", json: ["command": "echo downgraded"])
            #expect(plain.status == 400, "plaintext accepted after the resume: \(plain.text)")
            let sealed = try await e2eeClient("run", server.baseURL, server.ownerKey, id, privateKey, serverKey, "echo still-sealed")
            #expect(sealed["stdout"] as? String == "still-sealed\n", "\(sealed)")
            #expect(try await client.delete("/sandboxes/\(id)").status == 204)
        } catch {
            Issue.record("server log: \(server.log())")
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    /// The sandbox ids in the store's e2ee key table (read with Python's sqlite3).
    static func storedKeys(_ server: TestServer) async throws -> [String] {
        let python = try Python.interpreter(importing: "sqlite3")
        let output = try await Python.run(
            python, "-c",
            ["import sqlite3,sys,json; print(json.dumps([r[0] for r in sqlite3.connect(sys.argv[1]).execute('SELECT sandbox_id FROM sandbox_e2ee_keys')]))",
             server.dataDirectory + "/omnirun.db"])
        return (try JSONSerialization.jsonObject(with: Data(output.utf8))) as? [String] ?? []
    }
}
