import AgentProtocol
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import GuestAgent

/// The guest agent's file service on a temporary folder of this host, without a VM: paths
/// the host sends are normalised (never escaping by `..`), files and folders are made,
/// listed, moved, read and written under the asking user's file-system identity, and what
/// a caller may not do fails with the agent's status instead of happening as root.
@Suite("Guest agent: file service", .serialized)
struct FileServiceTests {
    static func withService(_ body: (FileService, String) async throws -> Void) async throws {
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let root = FileManager.default.temporaryDirectory.path + "/omnirun-files-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let service = FileService(pool: pool, identity: SandboxIdentity(ownsMachine: false, logger: Logger(label: "test")))
        do {
            try await body(service, root)
        } catch {
            try? FileManager.default.removeItem(atPath: root)
            try await pool.shutdownGracefully()
            throw error
        }
        try? FileManager.default.removeItem(atPath: root)
        try await pool.shutdownGracefully()
    }

    static func status(_ body: () async throws -> Void) async -> Int? {
        do {
            try await body()
            return nil
        } catch let failure as AgentFailure {
            return failure.status
        } catch {
            return -1
        }
    }

    @Test func pathsAreNormalisedAndNeverClimbAboveTheRoot() throws {
        #expect(try FileService.absolute("notes.txt", home: "/home/user") == "/home/user/notes.txt")
        #expect(try FileService.absolute("../../../../etc/passwd", home: "/home/user") == "/etc/passwd")
        #expect(try FileService.absolute("/a/./b//c/../d", home: "/x") == "/a/b/d")
        #expect(try FileService.absolute("/../../..", home: "/x") == "/")
        #expect(throws: AgentFailure.self) { try FileService.absolute("", home: "/x") }
        #expect(throws: AgentFailure.self) { try FileService.absolute("/tmp/a\u{0}b", home: "/x") }
    }

    @Test func makeWriteListReadMoveAndRemove() async throws {
        try await Self.withService { service, root in
            let made = try await service.makeDirectory(MakeDirectoryRequest(path: root + "/a/b/c", user: "root"))
            #expect(made.type == .directory && made.path == root + "/a/b/c")
            // A written file's parents are made; its bytes come back whole.
            let (fd, path) = try await service.openForWriting(path: root + "/a/new/dir/file.bin", user: "root", mode: 0o600, append: false)
            let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try await service.writeChunk(fd: fd, ByteBuffer(bytes: bytes), path: path)
            let written = try await service.finishWriting(fd: fd, path: path)
            #expect(written.size == Int64(bytes.count) && written.mode == 0o600 && written.type == .file)
            let (readFD, size, _) = try await service.openForReading(path: path, user: "root")
            #expect(size == Int64(bytes.count))
            var back: [UInt8] = []
            while let chunk = try await service.readChunk(fd: readFD) { back += chunk.readableBytesView }
            await service.closeFD(readFD)
            #expect(back == bytes)
            // Listing goes as deep as asked, no deeper.
            let shallow = try await service.list(path: root + "/a", depth: 1, user: "root").map(\.name)
            #expect(shallow == ["b", "new"])
            let deep = try await service.list(path: root + "/a", depth: 4, user: "root").map(\.path)
            #expect(deep.contains(root + "/a/new/dir/file.bin") && deep.contains(root + "/a/b/c"))
            // A move makes the target's parents.
            let moved = try await service.move(MoveRequest(from: path, to: root + "/z/y/file.bin", user: "root"))
            #expect(moved.size == Int64(bytes.count))
            #expect(await Self.status { _ = try await service.stat(path: path, user: "root") } == 404)
            try await service.remove(RemoveRequest(path: root + "/a", recursive: true, user: "root"))
            #expect(await Self.status { _ = try await service.stat(path: root + "/a", user: "root") } == 404)
        }
    }

    @Test func whatMayNotBeDoneFailsWithTheAgentsStatus() async throws {
        try await Self.withService { service, root in
            // `/` is never removed, whoever asks.
            #expect(await Self.status { try await service.remove(RemoveRequest(path: "/../", recursive: true, user: "root")) } == 400)
            // Reading a folder, listing a file, an unknown user.
            #expect(await Self.status { _ = try await service.openForReading(path: root, user: "root") } == 400)
            FileManager.default.createFile(atPath: root + "/plain", contents: Data("x".utf8))
            #expect(await Self.status { _ = try await service.list(path: root + "/plain", depth: 1, user: "root") } == 400)
            #expect(await Self.status { _ = try await service.stat(path: root, user: "no-such-user-here") } == 400)
            // A folder where a file is asked for: a conflict, not a crash.
            #expect(await Self.status { _ = try await service.makeDirectory(MakeDirectoryRequest(path: root + "/plain/sub", user: "root")) } != nil)
        }
    }

    /// The file-system identity is the asking user's: `nobody` cannot write into a folder
    /// only root may write to, nor read a root-only file, although the agent runs as root.
    @Test func anotherUserGetsTheirOwnRightsNotRoots() async throws {
        guard getuid() == 0, (try? UserDatabase.lookup("nobody")) != nil else { return }
        try await Self.withService { service, root in
            chmod(root, 0o755)
            FileManager.default.createFile(atPath: root + "/secret", contents: Data("root only".utf8), attributes: [.posixPermissions: 0o600])
            #expect(await Self.status { _ = try await service.openForWriting(path: root + "/evil", user: "nobody", mode: nil, append: false) } == 403)
            #expect(!FileManager.default.fileExists(atPath: root + "/evil"))
            #expect(await Self.status { _ = try await service.openForReading(path: root + "/secret", user: "nobody") } == 403)
            #expect(await Self.status { try await service.remove(RemoveRequest(path: root + "/secret", recursive: false, user: "nobody")) } == 403)
            #expect(FileManager.default.fileExists(atPath: root + "/secret"))
            // The thread that served nobody is root's again afterwards.
            let (fd, path) = try await service.openForWriting(path: root + "/after", user: "root", mode: nil, append: false)
            _ = try await service.finishWriting(fd: fd, path: path)
        }
    }

    /// `/etc/passwd` and `/etc/group` are the guest root's to write: lines that are not a
    /// user, ids out of range and a uid the kernel reads as "no change" never make the
    /// agent act as root.
    @Test func forgedUserFilesAreRefusedNotTrusted() throws {
        let root = FileManager.default.temporaryDirectory.path + "/omnirun-users-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let passwd = """
            garbage
            huge:x:99999999999999999999:1:h:/home/huge:/bin/sh
            negative:x:-1:-1:n:/home/n:/bin/sh
            nochange:x:4294967295:4294967295:c:/home/c:/bin/sh
            short:x:1
            good:x:1000:1000:g:/home/good:
            """
        try passwd.write(toFile: root + "/etc/passwd", atomically: true, encoding: .utf8)
        try "wheel:x:10:good,other\nbad:x:notanumber:good\n".write(toFile: root + "/etc/group", atomically: true, encoding: .utf8)
        #expect(throws: AgentFailure.self) { try UserDatabase.lookup("huge", root: root) }
        #expect(throws: AgentFailure.self) { try UserDatabase.lookup("negative", root: root) }
        #expect(throws: AgentFailure.self) { try UserDatabase.lookup("short", root: root) }
        let unchanged = try UserDatabase.lookup("nochange", root: root)
        #expect(throws: AgentFailure.self) { try unchanged.checkSwitchable() }
        let good = try UserDatabase.lookup("good", root: root)
        #expect(good.uid == 1000 && good.groups == [1000, 10] && good.shell == "/bin/sh" && good.home == "/home/good")
        try good.checkSwitchable()
    }
}
