import AgentProtocol
import ArgumentParser
import Foundation
import OmniRunError
import SandboxRuntime

extension OmniRun {
    /// Creates a sandbox, runs one command in it with its output streamed, destroys it.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a sandbox, run a command in it, print its output, destroy it.")

        @OptionGroup var runtime: RuntimeOptions

        @Option(name: .shortAndLong, help: "Template to create the sandbox from.")
        var template: String = "playground"

        @Option(name: .shortAndLong, help: "User to run as (default: the sandbox user `user`).")
        var user: String?

        @Flag(help: "Boot from scratch instead of restoring the template's snapshot.")
        var cold = false

        @Flag(help: "Print timings to stderr.")
        var timings = false

        @Argument(parsing: .captureForPassthrough, help: "The command line (run with bash -c).")
        var command: [String] = []

        func validate() throws {
            if command.isEmpty { throw ValidationError("give a command to run, e.g. `omnirun run -- python3 -c 'print(1)'`") }
        }

        func run() async throws {
            RuntimeFactory.bootstrapLogging(runtime.logLevel)
            let runtime = try RuntimeFactory.makeRuntime(self.runtime)
            let started = ContinuousClock.now
            if !cold {
                try await runtime.prepare(template: template)
            }
            let prepared = ContinuousClock.now
            let sandbox = try await runtime.create(SandboxSpec(template: template, coldBoot: cold))
            let created = ContinuousClock.now
            let words = command.first == "--" ? Array(command.dropFirst()) : command
            let line = words.count == 1 ? words[0] : words.map(shellQuote).joined(separator: " ")
            var exitCode: Int32 = 0
            do {
                let result = try await sandbox.exec(ProcessStartRequest(shell: line, user: user))
                FileHandle.standardOutput.write(Data(result.stdout))
                FileHandle.standardError.write(Data(result.stderr))
                exitCode = result.exitCode
            } catch {
                await runtime.destroyAll()
                throw error
            }
            let ran = ContinuousClock.now
            await runtime.destroyAll()
            if timings {
                FileHandle.standardError.write(
                    Data(
                        "[timings] prepare \(prepared - started), create \(created - prepared), command \(ran - created), destroy \(ContinuousClock.now - ran)\n"
                            .utf8))
            }
            if exitCode != 0 { throw ExitCode(exitCode) }
        }
    }
}

func shellQuote(_ word: String) -> String {
    if !word.isEmpty, word.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:@%+,".contains($0) }) { return word }
    return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
