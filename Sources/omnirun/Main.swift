import OmniRunCLI

@main
struct Main {
    static func main() async {
        await OmniRun.main()
    }
}
