import Foundation
import NIOConcurrencyHelpers
import OmniRunError

#if canImport(Glibc)
import Glibc
#endif

/// Receives one QEMU migration stream on a Unix socket and writes it to a file.
/// QEMU's seccomp filter forbids `exec:` migrations for restored machines and 7.2
/// has no `file:` target, so the VMM connects to this socket instead (a plain
/// `connect`, which the filter allows). One thread blocks on the socket; `finished`
/// resolves once the stream has ended and the file is on disk (fsync'd).
final class MigrationReceiver: @unchecked Sendable {
    let socketPath: String
    let outputPath: String
    private let listener: Int32
    private struct State {
        var result: Result<Int64, OmniRunError>?
        var waiters: [CheckedContinuation<Int64, any Error>] = []
        var cancelled = false
    }
    private let state = NIOLockedValueBox(State())

    /// `owner`: QEMU's user, the only one (besides the server) that may connect.
    init(socketPath: String, outputPath: String, owner: VMMIdentity? = nil) throws {
        self.socketPath = socketPath
        self.outputPath = outputPath
        unlink(socketPath)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw OmniRunError(.internalError, "cannot make a socket for the migration: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw OmniRunError(.internalError, "migration socket path too long: \(socketPath)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 1) == 0 else {
            let error = errno
            close(fd)
            throw OmniRunError(.internalError, "cannot listen on \(socketPath): errno \(error)")
        }
        // QEMU runs as its own user: the socket is that user's alone.
        if let owner { _ = chown(socketPath, owner.uid, owner.gid) }
        chmod(socketPath, 0o600)
        listener = fd
        let thread = Thread { [self] in self.receive() }
        thread.name = "omnirun-migration"
        thread.start()
    }

    /// The number of bytes written, once the stream has ended.
    func finished() async throws -> Int64 {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Int64, OmniRunError>? = state.withLockedValue { state in
                if let result = state.result { return result }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// Stops waiting (the receiving thread ends within 200 ms) and removes the socket.
    func cancel() {
        state.withLockedValue { $0.cancelled = true }
        unlink(socketPath)
    }

    private var isCancelled: Bool { state.withLockedValue { $0.cancelled } }

    private func complete(_ result: Result<Int64, OmniRunError>) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Int64, any Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(with: result.mapError { $0 as any Error }) }
    }

    private func receive() {
        defer { close(listener) }
        var connection: Int32 = -1
        while connection < 0 {
            if isCancelled { return complete(.failure(OmniRunError(.unavailable, "the migration was cancelled"))) }
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 200) > 0 { connection = accept(listener, nil, nil) }
        }
        _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
        defer { close(connection) }
        let output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard output >= 0 else {
            return complete(.failure(OmniRunError(.internalError, "cannot create \(outputPath): errno \(errno)")))
        }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total: Int64 = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                return complete(.failure(OmniRunError(.machineFailed, "reading the migration stream failed: errno \(errno)")))
            }
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, count - written) }
                if result < 0 {
                    if errno == EINTR { continue }
                    let code: OmniRunError.Code = errno == ENOSPC ? .noSpace : .internalError
                    return complete(.failure(OmniRunError(code, "writing \(outputPath) failed: errno \(errno)")))
                }
                written += result
            }
            total += Int64(count)
        }
        guard fsync(output) == 0 else {
            return complete(.failure(OmniRunError(.internalError, "fsync of \(outputPath) failed: errno \(errno)")))
        }
        complete(.success(total))
    }
}
