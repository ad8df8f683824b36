import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension APIBench {
    struct Burst {
        var timings: [Timing]
        var failures: [String]
        var wall: Double
    }

    /// `count` clients at once, each: create → `echo ok`; then every sandbox is deleted.
    func burst(_ count: Int) async -> Burst {
        let started = ContinuousClock.now
        var timings: [Timing] = []
        var failures: [String] = []
        await withTaskGroup(of: Result<Timing, any Error>.self) { group in
            for _ in 0..<count {
                group.addTask { do { return .success(try await createAndRun()) } catch { return .failure(error) } }
            }
            for await result in group {
                switch result {
                case .success(let timing): timings.append(timing)
                case .failure(let error): failures.append("\(error)")
                }
            }
        }
        let wall = (ContinuousClock.now - started).milliseconds
        await withTaskGroup(of: Void.self) { group in
            for timing in timings { group.addTask { _ = try? await request("DELETE", "/sandboxes/\(timing.id)") } }
        }
        return Burst(timings: timings, failures: failures, wall: wall)
    }

    /// PSS (MiB) of each QEMU the server runs right now (its child processes).
    func machinePSS() -> [Double] {
        guard let pid = serverPID else { return [] }
        return HostStats.children(of: pid).compactMap { HostStats.pss($0) }.map { Double($0) / 1_048_576 }
    }

    struct Transfer {
        var uploadMiBps: Double
        var downloadMiBps: Double
        var serverBaselineMiB: Double
        var serverPeakUploadMiB: Double
        var serverPeakDownloadMiB: Double
        /// The guest's own write rate to its disk (dd inside the sandbox), for scale.
        var guestDiskMiBps: Double?
    }

    /// Uploads `mib` MiB (multipart, as the SDK does) to a new sandbox and downloads it
    /// back, checking the bytes, while the server's resident memory is sampled.
    func fileTransfer(mib: Int, scratch: String) async throws -> Transfer {
        guard let pid = serverPID else { throw BenchError("no server") }
        let (_, created) = try await request("POST", "/sandboxes", json: ["template": template, "timeout": 600])
        guard let id = created["sandboxID"] as? String else { throw BenchError("create failed") }
        defer { Task { [self] in _ = try? await request("DELETE", "/sandboxes/\(id)") } }
        let boundary = "omnirun-bench-\(UInt64.random(in: 0...UInt64.max))"
        let body = scratch + "/upload-\(getpid()).multipart"
        let received = scratch + "/download-\(getpid()).bin"
        defer {
            try? FileManager.default.removeItem(atPath: body)
            try? FileManager.default.removeItem(atPath: received)
        }
        let target = "/home/user/bench-\(mib)m.bin"
        let digest = try writeMultipart(to: body, boundary: boundary, path: target, mib: mib)
        let baseline = Double(HostStats.rss(pid) ?? 0) / 1_048_576

        var upload = URLRequest(url: URL(string: baseURL + "/sandboxes/\(id)/files/upload")!)
        upload.httpMethod = "POST"
        upload.setValue(key, forHTTPHeaderField: "X-API-Key")
        upload.setValue("multipart/form-data; boundary=\(boundary)", forHTTPHeaderField: "Content-Type")
        var sampler = PeakMemorySampler(pid: pid)
        sampler.start()
        var started = ContinuousClock.now
        let (_, uploadResponse) = try await session.upload(for: upload, fromFile: URL(fileURLWithPath: body))
        let uploadSeconds = (ContinuousClock.now - started).milliseconds / 1000
        let uploadPeak = Double(sampler.stop()) / 1_048_576
        guard (uploadResponse as? HTTPURLResponse)?.statusCode == 200 else { throw BenchError("upload answered \(uploadResponse)") }

        var download = URLRequest(url: URL(string: baseURL + "/sandboxes/\(id)/files/download?path=\(target)")!)
        download.setValue(key, forHTTPHeaderField: "X-API-Key")
        sampler = PeakMemorySampler(pid: pid)
        sampler.start()
        started = ContinuousClock.now
        let (file, downloadResponse) = try await session.download(for: download)
        let downloadSeconds = (ContinuousClock.now - started).milliseconds / 1000
        let downloadPeak = Double(sampler.stop()) / 1_048_576
        guard (downloadResponse as? HTTPURLResponse)?.statusCode == 200 else { throw BenchError("download answered \(downloadResponse)") }
        try? FileManager.default.removeItem(atPath: received)
        try FileManager.default.moveItem(at: file, to: URL(fileURLWithPath: received))
        let size = (try FileManager.default.attributesOfItem(atPath: received)[.size] as? NSNumber)?.intValue ?? 0
        guard size == mib << 20, try checksum(received) == digest else { throw BenchError("downloaded bytes differ from the upload") }
        // dd prints "N bytes (…) copied, S s, …" on stderr.
        let (_, dd) = try await request(
            "POST", "/sandboxes/\(id)/commands",
            json: ["command": "rm -f \(target); dd if=/dev/zero of=/home/user/dd.bin bs=1M count=\(mib) conv=fsync; rm -f /home/user/dd.bin"])
        var guestRate: Double? = nil
        if let line = (dd["stderr"] as? String)?.split(separator: "\n").first(where: { $0.contains("copied") }) {
            let words = line.split(separator: " ")
            if let bytes = words.first.flatMap({ Double($0) }), let index = words.firstIndex(of: "s,"), index > 0,
                let seconds = Double(words[index - 1].replacingOccurrences(of: ",", with: ".")), seconds > 0
            {
                guestRate = bytes / 1_048_576 / seconds
            }
        }
        return Transfer(
            uploadMiBps: Double(mib) / uploadSeconds, downloadMiBps: Double(mib) / downloadSeconds, serverBaselineMiB: baseline,
            serverPeakUploadMiB: uploadPeak, serverPeakDownloadMiB: downloadPeak, guestDiskMiBps: guestRate)
    }

    /// Writes a multipart body holding `mib` MiB of pseudo-random bytes; returns their checksum.
    private func writeMultipart(to path: String, boundary: String, path target: String, mib: Int) throws -> UInt64 {
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw BenchError("cannot create \(path)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let name = (target as NSString).lastPathComponent
        try handle.write(
            contentsOf: Data(
                ("--\(boundary)\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n\(target)\r\n"
                    + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\n"
                    + "Content-Type: application/octet-stream\r\n\r\n").utf8))
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var sum: UInt64 = 0
        var block = [UInt8](repeating: 0, count: 1 << 20)
        for _ in 0..<mib {
            for i in stride(from: 0, to: block.count, by: 8) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                withUnsafeBytes(of: state.bigEndian) { bytes in for j in 0..<8 { block[i + j] = bytes[j] } }
            }
            sum = Self.fold(sum, block)
            try handle.write(contentsOf: block)
        }
        try handle.write(contentsOf: Data("\r\n--\(boundary)--\r\n".utf8))
        return sum
    }

    private func checksum(_ path: String) throws -> UInt64 {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var sum: UInt64 = 0
        while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty { sum = Self.fold(sum, Array(data)) }
        return sum
    }

    /// An order-sensitive checksum (FNV-1a over the bytes).
    private static func fold(_ start: UInt64, _ bytes: [UInt8]) -> UInt64 {
        var sum = start
        for byte in bytes { sum = (sum ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return sum
    }
}
