import OmniCLI

@main
struct Main {
    static func main() async {
        await Omni.main(GlobalOptions.hoisted(Array(CommandLine.arguments.dropFirst())))
    }
}
