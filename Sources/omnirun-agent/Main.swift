import GuestAgent

@main
struct AgentExecutable {
    static func main() async {
        await GuestAgent.main(arguments: CommandLine.arguments)
    }
}
