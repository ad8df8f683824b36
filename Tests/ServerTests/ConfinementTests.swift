import Foundation
import QEMUDriver
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Every QEMU a real server starts (restores, resumes, forks, a sandbox with internet
/// access, a template build machine, the template's own snapshot boot) runs as QEMU's
/// unprivileged user, under its seccomp filter, with no way to gain privileges, in a
/// cgroup of its own whose limits come from the template; and a guest flooding its
/// console does not fill the host's disk.
@Suite("QEMU runs confined", .serialized, .timeLimit(.minutes(20)))
struct ConfinementTests {
    static let overheadMB = 384
    /// The console's cap here (a TCG guest's UART writes ~80 KB/s).
    static let consoleKiB = 256

    static let server = Task<TestServer, any Error> {
        try await TestServer.start(
            name: "confinement",
            environment: [
                "OMNIRUN_IDLE_TIMEOUT": "900", "OMNIRUN_CONCURRENT_LIMIT": "8",
                "OMNIRUN_QEMU_MEMORY_OVERHEAD_MB": "\(overheadMB)", "OMNIRUN_CONSOLE_LOG_KB": "\(consoleKiB)",
            ])
    }

    struct VMM: CustomStringConvertible {
        var pid: Int32
        var uid: [String]
        var gid: [String]
        var seccomp: String
        var noNewPrivileges: String
        var memoryBytes: Int64?
        var pidsMax: Int?
        var directory: String
        var description: String {
            "pid \(pid) \(directory.split(separator: "/").suffix(2).joined(separator: "/")): uid \(uid) gid \(gid) seccomp \(seccomp) nnp \(noNewPrivileges) memory.max \(memoryBytes.map(String.init) ?? "-") pids.max \(pidsMax.map(String.init) ?? "-")"
        }
    }

    /// The QEMUs whose folder is under `prefix`, as /proc shows them.
    static func vmms(under prefix: String) -> [VMM] {
        hostProcesses(matching: prefix).compactMap { pid in
            guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                String(decoding: cmdline, as: UTF8.self).contains("qemu-system"),
                let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            else { return nil }
            func field(_ name: String) -> [String] {
                status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map {
                    $0.dropFirst(name.count + 1).split(whereSeparator: { $0 == "\t" || $0 == " " }).map(String.init)
                } ?? []
            }
            let words = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            let directory = words.first { $0.hasPrefix("guest=") }.map { String($0.dropFirst(6).dropLast()) } ?? "?"
            let limits = VMMCgroups.limits(ofProcess: pid)
            return VMM(
                pid: pid, uid: field("Uid"), gid: field("Gid"), seccomp: field("Seccomp").first ?? "?",
                noNewPrivileges: field("NoNewPrivs").first ?? "?", memoryBytes: limits.memoryBytes, pidsMax: limits.pidsMax,
                directory: directory)
        }
    }

    static var qemuUser: (uid: String, gid: String) {
        let entry = getpwnam("omnirun-qemu")
        return (entry.map { "\($0.pointee.pw_uid)" } ?? "?", entry.map { "\($0.pointee.pw_gid)" } ?? "?")
    }

    /// Checks one VMM against its template's memory and vCPUs.
    static func check(_ vmm: VMM, memoryMB: Int, vcpus: Int) {
        let user = qemuUser
        #expect(vmm.uid == [user.uid, user.uid, user.uid, user.uid], "\(vmm)")
        #expect(vmm.gid == [user.gid, user.gid, user.gid, user.gid], "\(vmm)")
        #expect(!vmm.uid.contains("0") && !vmm.gid.contains("0"), "\(vmm)")
        #expect(vmm.seccomp == "2", "\(vmm)")
        #expect(vmm.noNewPrivileges == "1", "\(vmm)")
        #expect(vmm.memoryBytes == Int64(memoryMB + overheadMB) << 20, "\(vmm)")
        #expect(vmm.pidsMax == 128 + 2 * vcpus, "\(vmm)")
    }

    @Test func everyVMMRunsUnprivilegedUnderSeccompInItsOwnCgroup() async throws {
        let server = try await Self.server.value
        let client = server.client()
        let sandboxes = server.dataDirectory + "/sandboxes/"
        let running = try await createSandbox(client, ["template": "playground", "timeout": 900])
        let info = try await client.get("/sandboxes/\(running)").object
        let memoryMB = info["memoryMB"] as? Int ?? -1
        let vcpus = info["cpuCount"] as? Int ?? -1
        #expect(memoryMB > 0 && vcpus > 0, "\(info)")
        let online = try await createSandbox(client, ["template": "playground", "timeout": 900, "internet": true])
        let paused = try await createSandbox(client, ["template": "playground", "timeout": 900])
        #expect(try await client.post("/sandboxes/\(paused)/pause").status == 200)
        #expect(try await client.post("/sandboxes/\(paused)/resume").status == 200)
        let forked = try await client.request("POST", "/sandboxes/\(running)/fork", json: ["count": 1], timeout: 300)
        #expect(forked.status == 201, "\(forked.text)")
        let copy = (forked.object["sandboxes"] as? [[String: Any]])?.first?["sandboxID"] as? String ?? ""
        // Each answers (a VMM that could not open its files would not).
        for id in [running, online, paused, copy] {
            let reply = try await client.post("/sandboxes/\(id)/commands", ["command": "echo alive", "timeout": 60])
            #expect((reply.object["stdout"] as? String) == "alive\n", "\(id): \(reply.text)")
        }
        let vmms = Self.vmms(under: sandboxes)
        print("[figures] sandbox VMMs:\n" + vmms.map(\.description).joined(separator: "\n"))
        let folders = Set(vmms.map { ($0.directory as NSString).lastPathComponent })
        #expect(folders.isSuperset(of: [running, online, paused, copy]), "\(folders)")
        for vmm in vmms { Self.check(vmm, memoryMB: memoryMB, vcpus: vcpus) }
        // No qemu-system of this server runs as root, whatever its folder.
        for pid in hostProcesses(matching: server.dataDirectory) {
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            let cmdline = String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data(), as: UTF8.self)
            guard cmdline.contains("qemu-system") else { continue }
            #expect(!status.contains("Uid:\t0\t"), "pid \(pid) runs as root")
        }

        // The files: the folder is the server's; QEMU's user owns only what it writes.
        let folder = sandboxes + running
        #expect(Self.owner(folder) == 0)
        #expect(Self.owner(folder + "/disk.qcow2") == Int(Self.qemuUser.uid))
        #expect(Self.owner(folder + "/disk-chain.json") == 0)

        // A subverted QEMU (a process as QEMU's user holding its descriptors) cannot
        // change the template's memory: the sealed copy refuses writes, the file is not its.
        // (A restored machine maps it; `running` was forked, so it was resumed since.)
        let vmm = try #require(vmms.first { $0.directory.hasSuffix("/" + online) })
        let memfd = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(vmm.pid)/fd")) ?? []).first { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(vmm.pid)/fd/\(fd)"))?.contains("omnirun-snapshot-memory") == true
        }
        let memfdPath = "/proc/\(vmm.pid)/fd/\(memfd ?? "-")"
        let attack = Self.asQEMUUser(
            """
            import os, sys
            for path in sys.argv[1:]:
                try:
                    fd = os.open(path, os.O_RDWR)
                    try:
                        os.pwrite(fd, b"owned", 0)
                        print(path, "WRITTEN")
                    except OSError as e:
                        print(path, "write refused", e.errno)
                except OSError as e:
                    print(path, "open refused", e.errno)
            """, [memfdPath] + Self.snapshotMemoryFiles())
        print("[figures] writes to the template's memory as QEMU's user:\n\(attack)")
        #expect(memfd != nil)
        #expect(!attack.contains("WRITTEN") && attack.contains("refused"), "\(attack)")

        // A template build machine: confined alike while its step runs.
        let name = "confined-\(UUID().uuidString.prefix(6).lowercased())"
        let build = Task { () -> (status: String, text: String) in
            let built = try await CustomTemplateTests.build(
                client, name: name, dockerfile: "FROM playground\nRUN sleep 15 && echo built > /tmp/built",
                settings: ["startCmd": "sleep 100000", "readyCmd": "true"])
            return (built["status"] as? String ?? "", "\(built)")
        }
        var builders: [VMM] = []
        let deadline = Date().addingTimeInterval(300)
        while builders.isEmpty, Date() < deadline {
            builders = Self.vmms(under: server.dataDirectory + "/builds/") + Self.vmms(under: server.dataDirectory + "/templates/")
            try await Task.sleep(for: .milliseconds(250))
        }
        // QEMU installs its seccomp filter while it starts: a VMM caught in its first moments
        // shows none yet, so it is read again until it has one (or a minute has passed).
        let filtered = Date().addingTimeInterval(60)
        while builders.contains(where: { $0.seccomp != "2" }), Date() < filtered {
            try await Task.sleep(for: .milliseconds(500))
            let again = Self.vmms(under: server.dataDirectory + "/builds/") + Self.vmms(under: server.dataDirectory + "/templates/")
            if !again.isEmpty { builders = again }
        }
        print("[figures] build VMMs:\n" + builders.map(\.description).joined(separator: "\n"))
        #expect(!builders.isEmpty)
        for vmm in builders {
            let user = Self.qemuUser
            #expect(vmm.uid.allSatisfy { $0 == user.uid } && vmm.seccomp == "2" && vmm.noNewPrivileges == "1", "\(vmm)")
            #expect(vmm.memoryBytes != nil && vmm.pidsMax != nil, "\(vmm)")
        }
        let built = try await build.value
        #expect(built.status == "ready", "\(built.text)")
        let groups = vmms.flatMap { VMMCgroups.limits(ofProcess: $0.pid).groups }.filter { $0.contains("omnirun-vmm/") }
        #expect(!groups.isEmpty)
        for id in [running, online, paused, copy] { _ = try? await client.delete("/sandboxes/\(id)") }
        // Their groups go with them.
        try await Task.sleep(for: .seconds(1))
        for group in groups {
            #expect(!FileManager.default.fileExists(atPath: group), "\(group) left behind")
        }
    }

    static func owner(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_uid) : -1
    }

    /// The memory files of the template snapshots tests use.
    static func snapshotMemoryFiles() -> [String] {
        let root = TestRuntime.snapshotDirectory
        let folders = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return folders.filter { $0.hasPrefix("playground") }.map { root + "/" + $0 + "/memory.raw" }
            .filter { FileManager.default.fileExists(atPath: $0) }.prefix(2).map { $0 }
    }

    /// Runs a Python script as QEMU's user (as a subverted QEMU would be).
    static func asQEMUUser(_ script: String, _ arguments: [String]) -> String {
        let user = qemuUser
        return runTool(
            ["/usr/bin/setpriv", "--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", "/usr/bin/python3", "-c", script]
                + arguments)
    }

    @Test func aGuestFloodingItsConsoleFillsNoDisk() async throws {
        let server = try await Self.server.value
        let client = server.client()
        let id = try await createSandbox(client, ["template": "playground", "timeout": 900])
        let console = server.dataDirectory + "/sandboxes/\(id)/console.log"
        let flood = """
            import time
            total, deadline, n = 0, time.time() + 25, 0
            with open("/dev/console", "w") as console:
                while time.time() < deadline:
                    line = "console flood line %d %s\\n" % (n, "x" * 100)
                    console.write(line)
                    console.flush()
                    total += len(line)
                    n += 1
            print(total, n)
            """
        #expect(try await client.post("/sandboxes/\(id)/files", ["path": "/tmp/flood.py", "content": flood]).status == 200)
        let watch = ProcessWatch(pid: server.process.processIdentifier, disk: server.dataDirectory)
        let before = watch.sample()
        let largest = Task {
            var largest: UInt64 = 0
            while !Task.isCancelled {
                var info = stat()
                if stat(console, &info) == 0 { largest = max(largest, UInt64(info.st_blocks) * 512, UInt64(info.st_size)) }
                try? await Task.sleep(for: .milliseconds(50))
            }
            return largest
        }
        let sampler = Task { await watch.sampleUntilCancelled() }
        let reply = try await client.post(
            "/sandboxes/\(id)/commands", ["command": "python3 /tmp/flood.py", "user": "root", "timeout": 120])
        largest.cancel()
        sampler.cancel()
        let largestConsole = await largest.value
        let peak = await sampler.value
        let after = watch.sample()
        let words = (reply.object["stdout"] as? String ?? "").split(separator: " ")
        let written = Int(words.first ?? "") ?? 0
        print("[figures] console flood: the guest wrote \(written) bytes in 25 s; console.log at most \(largestConsole) bytes; server \(before) → peak \(peak) → after \(after)")
        // The guest wrote well past the cap, the file never held much more: it is cut
        // twice a second, so between two cuts it can grow by what the guest prints in
        // half a second (~300 KiB at the rates seen) plus the file system's block
        // preallocation; 1 MiB bounds that.
        let bound = UInt64(Self.consoleKiB + 768) << 10
        #expect(written > 4 * (Self.consoleKiB << 10), "\(reply.text)")
        #expect(largestConsole <= bound, "console.log reached \(largestConsole) bytes")
        // It still logs: the newest lines are there.
        let tail = (try? String(contentsOfFile: console, encoding: .utf8)) ?? ""
        let last = (Int(words.dropFirst().first?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 1) - 1
        #expect(tail.contains("console flood line \(last) "), "the newest line \(last) is not in the log")
        #expect(try await client.post("/sandboxes/\(id)/commands", ["command": "echo fine", "timeout": 60]).object["stdout"] as? String == "fine\n")
        _ = try? await client.delete("/sandboxes/\(id)")
    }
}
