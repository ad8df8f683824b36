import Crypto
import Foundation
import NIOCore
import OmniRunError
import Testing

@testable import OmniRunControl
@testable import OmniRunServer

#if canImport(Glibc)
import Glibc
#endif

/// Node-to-node signatures, a template's image taken from another node, and what a node
/// accepts as another's description of a template: pure functions and files, no server.
@Suite("Cluster: signatures and template transfer")
struct ClusterUnitTests {
    let auth = ClusterAuth(node: "node-1", secret: Data(repeating: 7, count: 32))

    @Test func aSignatureOpensOnlyItsOwnCallWithinAMinute() {
        let now: Int64 = 1_800_000_000_000
        let value = auth.sign(method: "GET", target: "/internal/templates/web", at: now)
        #expect(auth.verify(value, method: "GET", target: "/internal/templates/web", now: now + 59_000) == "node-1")
        // Another route, another method, too late, too early, another cluster's secret.
        #expect(auth.verify(value, method: "GET", target: "/internal/templates/web/rootfs", now: now) == nil)
        #expect(auth.verify(value, method: "POST", target: "/internal/templates/web", now: now) == nil)
        #expect(auth.verify(value, method: "GET", target: "/internal/templates/web", now: now + 61_000) == nil)
        #expect(auth.verify(value, method: "GET", target: "/internal/templates/web", now: now - 61_000) == nil)
        let other = ClusterAuth(node: "node-1", secret: Data(repeating: 8, count: 32))
        #expect(other.verify(value, method: "GET", target: "/internal/templates/web", now: now) == nil)
        // The node named in it is signed too: renaming the sender breaks it.
        let renamed = value.replacingOccurrences(of: "n=node-1", with: "n=node-2")
        #expect(auth.verify(renamed, method: "GET", target: "/internal/templates/web", now: now) == nil)
    }

    @Test func malformedSignaturesAreRefusedWithoutTrapping() {
        let target = "/sandboxes/sbx_1"
        for value in [
            "", "t=1", "t=1,n=a,s=00,x=1", "t=1,t=2,n=a", "t=-9223372036854775808,n=a,s=00", "t=9223372036854775807,n=a,s=00",
            "t=abc,n=a,s=00", "t=1,n=,s=00", String(repeating: "t=1,", count: 200), "t=1,n=\(String(repeating: "a", count: 41)),s=00",
        ] {
            #expect(auth.verify(value, method: "GET", target: target, now: Int64.max) == nil, "\(value.prefix(40))")
            #expect(auth.verify(value, method: "GET", target: target, now: Int64.min) == nil, "\(value.prefix(40))")
        }
        #expect(auth.verify(nil, method: "GET", target: target) == nil)
    }

    static func chunks(_ data: [UInt8], size: Int = 10_000) -> AsyncStream<ByteBuffer> {
        AsyncStream { continuation in
            var offset = 0
            while offset < data.count {
                continuation.yield(ByteBuffer(bytes: data[offset..<min(offset + size, data.count)]))
                offset += size
            }
            continuation.finish()
        }
    }

    static func digest(_ data: [UInt8]) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    static func folder() throws -> String {
        let path = NSTemporaryDirectory() + "omnirun-cluster-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func anImageArrivesWholeAndSparse() async throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // 4 MiB of zeros between two stretches of data.
        var data = [UInt8](repeating: 0, count: (4 << 20) + 20_000)
        for i in 0..<10_000 { data[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 1) }
        for i in (data.count - 10_000)..<data.count { data[i] = UInt8(truncatingIfNeeded: i &* 17 &+ 3) }
        let path = dir + "/image.ext4"
        try await ImageReceiver(path: path, expectedBytes: Int64(data.count), expectedSHA256: Self.digest(data)).receive(Self.chunks(data, size: 65_536))
        #expect(FileManager.default.contents(atPath: path) == Data(data))
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(Int64(info.st_blocks) * 512 < 1 << 20, "the zeros stay holes: \(info.st_blocks) blocks")
        #expect(!FileManager.default.fileExists(atPath: path + ".partial"))
    }

    @Test func aWrongLongOrShortImageLeavesNothing() async throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let path = dir + "/image.ext4"
        var tampered = data
        tampered[50_000] ^= 1
        let cases: [(sent: [UInt8], bytes: Int64, what: String)] = [
            (tampered, Int64(data.count), "SHA-256"), (data + [1], Int64(data.count), "ran past"), (Array(data.dropLast()), Int64(data.count), "ended after"),
        ]
        for (sent, bytes, what) in cases {
            do {
                try await ImageReceiver(path: path, expectedBytes: bytes, expectedSHA256: Self.digest(data)).receive(Self.chunks(sent))
                Issue.record("a \(what) image was taken")
            } catch let error as OmniRunError {
                #expect(error.message.contains(what), "\(error.message)")
            }
            #expect(!FileManager.default.fileExists(atPath: path))
            #expect(!FileManager.default.fileExists(atPath: path + ".partial"))
        }
    }

    static func transfer() -> TemplateTransfer {
        TemplateTransfer(
            name: "web", build: "bld_0123456789ab", key: "0123456789abcdef", kernelOf: "playground", rootfsOf: nil, rootfsBytes: 1 << 20,
            rootfsSHA256: String(repeating: "ab", count: 32), vcpus: 1, memoryMB: 512, diskMB: 2048, description: nil, warmUp: [],
            start: "python3 -m http.server", ready: nil, readyTimeoutSeconds: 120, startUser: "user", setupEnv: [:], cwd: nil, env: [:],
            user: nil, workdir: nil, ports: [8000])
    }

    @Test func anotherNodesDescriptionIsCheckedBeforeUse() throws {
        #expect(try Self.transfer().validated(requested: "web") == Self.transfer())
        var refused: [TemplateTransfer] = []
        var wrong = Self.transfer()
        wrong.name = "other"
        refused.append(wrong)
        wrong = Self.transfer()
        wrong.kernelOf = "../../etc"
        refused.append(wrong)
        wrong = Self.transfer()
        wrong.rootfsSHA256 = "zz"
        refused.append(wrong)
        wrong = Self.transfer()
        wrong.rootfsBytes = Int64.max
        refused.append(wrong)
        wrong = Self.transfer()
        wrong.rootfsBytes = nil
        refused.append(wrong)
        wrong = Self.transfer()
        wrong.build = "bld/../../x"
        refused.append(wrong)
        wrong = Self.transfer()
        wrong.memoryMB = -1
        refused.append(wrong)
        wrong = Self.transfer()
        wrong.ports = [0]
        refused.append(wrong)
        wrong = Self.transfer()
        wrong.env = Dictionary(uniqueKeysWithValues: (0..<1001).map { ("K\($0)", "v") })
        refused.append(wrong)
        for transfer in refused {
            #expect(throws: OmniRunError.self) { try transfer.validated(requested: "web") }
        }
        #expect(throws: OmniRunError.self) { try Self.transfer().validated(requested: "web2") }
    }

    @Test func aNodesPreviewGatewayIsOnItsAdvertisedHost() {
        #expect(PreviewNodeRoute.host(ofAdvertiseURL: "http://10.0.0.11:8080") == "10.0.0.11")
        #expect(PreviewNodeRoute.host(ofAdvertiseURL: "https://node-2.internal") == "node-2.internal")
        #expect(PreviewNodeRoute.host(ofAdvertiseURL: "http://[fd00::2]:8080") == "fd00::2")
        #expect(PreviewNodeRoute.host(ofAdvertiseURL: "not a url") == nil)
    }
}
