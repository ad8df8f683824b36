import Foundation
import Logging
import NIOCore
import NIOPosix
import OmniRunError

/// A client of QEMU's machine protocol (JSON lines over a Unix socket).
actor QMPClient {
    private let name: String
    private var writer: NIOAsyncChannelOutboundWriter<ByteBuffer>?
    private var pending: [Int: CheckedContinuation<[UInt8], any Error>] = [:]
    private var nextID = 1
    private var closedReason: String?
    private var greeted: CheckedContinuation<Void, any Error>?
    private var isGreeted = false
    private var eventWaiters: [(String, CheckedContinuation<Void, Never>)] = []
    private(set) var seenEvents: [String] = []

    private init(name: String) {
        self.name = name
    }

    /// Connects (retrying until `timeout` while QEMU creates its socket) and
    /// negotiates capabilities.
    static func connect(path: String, name: String, timeout: Duration, group: any EventLoopGroup) async throws -> QMPClient {
        let deadline = ContinuousClock.now + timeout
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                let channel = try await ClientBootstrap(group: group)
                    .connect(unixDomainSocketPath: path) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                        }
                    }
                let client = QMPClient(name: name)
                await client.run(channel)
                try await client.waitForGreeting()
                _ = try await client.execute("qmp_capabilities")
                return client
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(2))
            }
        }
        throw OmniRunError(.machineFailed, "QMP socket of \(name) did not answer: \(lastError.map { "\($0)" } ?? "timeout")")
    }

    private func run(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>) {
        Task {
            do {
                try await channel.executeThenClose { inbound, outbound in
                    self.attach(outbound)
                    var pendingBytes: [UInt8] = []
                    for try await chunk in inbound {
                        pendingBytes.append(contentsOf: chunk.readableBytesView)
                        while let newline = pendingBytes.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = Array(pendingBytes[..<newline])
                            pendingBytes.removeFirst(newline + 1)
                            self.receive(line)
                        }
                        if pendingBytes.count > 16 << 20 { throw OmniRunError(.protocolViolation, "QMP line too long") }
                    }
                }
                self.closed("QMP connection closed")
            } catch {
                self.closed("QMP connection failed: \(error)")
            }
        }
    }

    private func attach(_ writer: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.writer = writer
    }

    private struct Envelope: Decodable {
        var id: Int?
        var event: String?
        var error: ErrorBody?
        var QMP: EmptyObject?
        struct ErrorBody: Decodable {
            var desc: String
        }
        struct EmptyObject: Decodable {}
    }

    private func receive(_ line: [UInt8]) {
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(line)) else { return }
        if envelope.QMP != nil {
            isGreeted = true
            greeted?.resume()
            greeted = nil
            return
        }
        if let event = envelope.event {
            seenEvents.append(event)
            if seenEvents.count > 256 { seenEvents.removeFirst(128) }
            let ready = eventWaiters.filter { $0.0 == event }
            eventWaiters.removeAll { $0.0 == event }
            for (_, waiter) in ready { waiter.resume() }
            return
        }
        guard let id = envelope.id, let continuation = pending.removeValue(forKey: id) else { return }
        if let error = envelope.error {
            continuation.resume(throwing: OmniRunError(.machineFailed, "QMP error from \(name): \(error.desc)"))
        } else {
            continuation.resume(returning: line)
        }
    }

    private func closed(_ reason: String) {
        closedReason = reason
        writer = nil
        for (_, continuation) in pending {
            continuation.resume(throwing: OmniRunError(.machineFailed, "\(name): \(reason)"))
        }
        pending.removeAll()
        greeted?.resume(throwing: OmniRunError(.machineFailed, "\(name): \(reason)"))
        greeted = nil
        for (_, waiter) in eventWaiters { waiter.resume() }
        eventWaiters.removeAll()
    }

    private func waitForGreeting() async throws {
        if isGreeted { return }
        if let closedReason { throw OmniRunError(.machineFailed, "\(name): \(closedReason)") }
        try await withCheckedThrowingContinuation { greeted = $0 }
    }

    /// Runs a command; `arguments` is a JSON object's text. Returns the raw reply line.
    @discardableResult
    func execute(_ command: String, arguments: String? = nil) async throws -> [UInt8] {
        guard let writer, closedReason == nil else {
            throw OmniRunError(.machineFailed, "\(name): QMP is not connected (\(closedReason ?? "not started"))")
        }
        let id = nextID
        nextID += 1
        var text = #"{"execute":"\#(command)","id":\#(id)"#
        if let arguments { text += #","arguments":\#(arguments)"# }
        text += "}\n"
        return try await withCheckedThrowingContinuation { continuation in
            pending[id] = continuation
            let buffer = ByteBuffer(string: text)
            Task {
                do {
                    try await writer.write(buffer)
                } catch {
                    self.failPending(id, error)
                }
            }
        }
    }

    private func failPending(_ id: Int, _ error: any Error) {
        pending.removeValue(forKey: id)?.resume(throwing: OmniRunError(.machineFailed, "\(name): QMP write failed: \(error)"))
    }

    /// Decodes the `return` member of a reply.
    func query<T: Decodable>(_ command: String, arguments: String? = nil, as type: T.Type) async throws -> T {
        let line = try await execute(command, arguments: arguments)
        do {
            return try JSONDecoder().decode(QMPReply<T>.self, from: Data(line)).return
        } catch {
            throw OmniRunError(.protocolViolation, "\(name): unexpected QMP reply to \(command): \(String(decoding: line, as: UTF8.self))")
        }
    }

    var isConnected: Bool { closedReason == nil && writer != nil }
}

struct QMPReply<R: Decodable>: Decodable {
    var `return`: R
}
