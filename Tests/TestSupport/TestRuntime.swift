import Foundation
import Logging
import OmniRunCore
import QEMUDriver
import SandboxRuntime

/// One runtime per test process, shared by every test (building a template's
/// snapshot happens once; it is cached on disk across runs).
public enum TestRuntime {
    private static let shared = Task<SandboxRuntime, any Error> {
        var logger = Logger(label: "omnirun.test")
        logger.logLevel = .warning
        var qemu = QEMUConfiguration()
        if ProcessInfo.processInfo.environment["OMNIRUN_ACCEL"] == "kvm" { qemu.accelerator = .kvm }
        if ProcessInfo.processInfo.environment["OMNIRUN_ACCEL"] == "tcg" { qemu.accelerator = .tcg }
        let driver = try QEMUDriver(configuration: qemu, logger: logger)
        let catalog = ImageCatalog(cacheDirectory: ImageCatalog.defaultCacheDirectory(environment: ProcessInfo.processInfo.environment))
        guard !catalog.templates().isEmpty else {
            throw TestSetupError("no guest image built: run `make image` (or .ci/run) first")
        }
        var configuration = SandboxRuntime.Configuration(dataDirectory: dataDirectory)
        configuration.snapshotDirectory = snapshotDirectory
        let runtime = SandboxRuntime(driver: driver, catalog: catalog, configuration: configuration, logger: logger)
        try await runtime.prepare(template: "playground")
        return runtime
    }

    /// Where tests keep snapshots and sandboxes (`$OMNIRUN_TEST_DATA_DIR`, else the default data dir).
    public static var dataDirectory: String {
        ProcessInfo.processInfo.environment["OMNIRUN_TEST_DATA_DIR"] ?? SandboxRuntime.Configuration.defaultDataDirectory(environment: ProcessInfo.processInfo.environment)
    }

    /// Template snapshots, shared by every test run on this machine
    /// (`$OMNIRUN_TEST_SNAPSHOT_DIR`, else `<test data>/snapshots`).
    public static var snapshotDirectory: String {
        ProcessInfo.processInfo.environment["OMNIRUN_TEST_SNAPSHOT_DIR"] ?? dataDirectory + "/snapshots"
    }

    public static func runtime() async throws -> SandboxRuntime {
        try await shared.value
    }

    /// Creates a sandbox for the duration of `body` and always destroys it.
    public static func withSandbox<T: Sendable>(
        _ spec: SandboxSpec = SandboxSpec(template: "playground"), _ body: (Sandbox) async throws -> T
    ) async throws -> T {
        let runtime = try await runtime()
        let sandbox = try await CreateGate.shared.run { try await runtime.create(spec) }
        do {
            let result = try await body(sandbox)
            await runtime.destroy(sandbox.id)
            return result
        } catch {
            await runtime.destroy(sandbox.id)
            throw error
        }
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Processes on this host whose command line mentions `needle`.
public func hostProcesses(matching needle: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: data, as: UTF8.self).contains(needle)
    }
}

/// Which built-in templates' tests run. Heavy templates are built only on request
/// (`make templates`), so by default a template's test runs when its image is built;
/// `OMNIRUN_TEST_TEMPLATES=all` (or a comma-separated list) makes the tests of those
/// templates run and fail if the image is missing.
public enum TemplateTestGate {
    public static var requested: Set<String> {
        let value = ProcessInfo.processInfo.environment["OMNIRUN_TEST_TEMPLATES"] ?? ""
        return Set(value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    public static func isRequested(_ template: String) -> Bool {
        requested.contains("all") || requested.contains(template)
    }

    /// Built, and built with the guest agent of this checkout: its initramfs (the agent
    /// and the kernel's modules) is the one `make test` just built for playground. An
    /// image left in the cache by an older checkout (another agent) is not tested: its
    /// snapshot could not be taken (`make image TEMPLATE=x` rebuilds it).
    public static func isBuilt(_ template: String) -> Bool {
        let catalog = ImageCatalog(cacheDirectory: ImageCatalog.defaultCacheDirectory(environment: ProcessInfo.processInfo.environment))
        guard catalog.isBuilt(template) else { return false }
        guard template != "playground", let current = try? catalog.image(for: "playground").initrd else { return true }
        return (try? catalog.image(for: template).initrd) == current
    }

    /// For `.enabled(if:)`: the template's image is built, or its test was asked for.
    public static func shouldTest(_ template: String) -> Bool {
        isRequested(template) || isBuilt(template)
    }

    /// A sandbox of the template for the duration of `body`, with a clear failure when
    /// the image is missing.
    public static func withSandbox<T: Sendable>(_ template: String, _ body: (Sandbox) async throws -> T) async throws -> T {
        guard isBuilt(template) else {
            throw TestSetupError("template \(template) is not built: run `make image TEMPLATE=\(template)` (or `make templates`)")
        }
        return try await TestRuntime.withSandbox(SandboxSpec(template: template)) { sandbox in
            // Compilers keep a template's machine busy for a while: let the suite's other
            // machines (tests with tight timing) have the CPU first.
            sandbox.machine.setPriority(10)
            return try await body(sandbox)
        }
    }
}
