import ArgumentParser
extension OmniRun { struct Bench: AsyncParsableCommand { func run() async throws {} } }
