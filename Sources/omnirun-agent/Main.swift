import GuestAgent

#if canImport(Glibc)
import Glibc
#endif

@main
struct AgentExecutable {
    static func main() {
        // PID-1 set-up first, on this thread alone; then the agent on the task pool.
        let boot = GuestAgent.boot()
        GuestAgent.runTasksOnTheEventLoop()
        Task.detached {
            await GuestAgent.serve(arguments: CommandLine.arguments, boot: boot)
            exit(0)
        }
        while true { pause() }
    }
}
