import ArgumentParser
import Foundation
import SandboxRuntime

extension OmniRun {
    /// Builds a template's snapshot ahead of time (creates are restores of it).
    struct Prepare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Boot a template once and save its snapshot, so that creates are restores.")

        @OptionGroup var runtime: RuntimeOptions

        @Option(name: .shortAndLong, help: "Template to prepare.")
        var template: String = "playground"

        func run() async throws {
            RuntimeFactory.bootstrapLogging(runtime.logLevel)
            let runtime = try RuntimeFactory.makeRuntime(self.runtime)
            let started = ContinuousClock.now
            let snapshot = try await runtime.prepare(template: template)
            print("snapshot of \(template) ready in \(ContinuousClock.now - started): \(snapshot.directory)")
        }
    }
}
