import Logging
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Collects every child that exits (PID 1 inherits orphans too) on one dedicated
/// thread, and hands each wait status to the process table.
final class Reaper: @unchecked Sendable {
    private let semaphore: UnsafeMutablePointer<sem_t>
    private let pool = NIOThreadPool(numberOfThreads: 1)

    init() {
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
    }

    /// Wakes the reaper if it is idle because the agent had no children.
    func childSpawned() {
        sem_post(semaphore)
    }

    func start(table: ProcessTable, logger: Logger) {
        pool.start()
        let semaphore = SemaphoreRef(pointer: self.semaphore)
        pool.submit { _ in
            while true {
                var status: Int32 = 0
                let pid = waitpid(-1, &status, 0)
                if pid > 0 {
                    let s = status
                    Task { await table.reaped(pid: pid, status: s) }
                    continue
                }
                if errno == EINTR { continue }
                // ECHILD: nothing to wait for until the next spawn.
                var deadline = timespec()
                clock_gettime(CLOCK_REALTIME, &deadline)
                deadline.tv_sec += 1
                _ = sem_timedwait(semaphore.pointer, &deadline)
            }
        }
    }
}

private struct SemaphoreRef: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<sem_t>
}
