import OmniRunCore

extension SandboxRuntime {
    /// Boots a machine that is not a sandbox (a template build step) in `<data>/builds/<name>`:
    /// `destroyAll()` takes it down too, and a later start removes what a crash left.
    public func bootBuildMachine(image: MachineImage, name: String) async throws -> any MachineInstance {
        let machine = try await driver.boot(
            image: image, options: MachineOptions(name: name, directory: configuration.dataDirectory + "/builds/\(name)"),
            snapshotable: true)
        buildMachines[name] = machine
        return machine
    }

    public func releaseBuildMachine(_ name: String) {
        buildMachines[name] = nil
    }

    /// Stops every build machine (a server shutting down; their builds fail).
    public func destroyBuildMachines() async {
        let machines = Array(buildMachines.values)
        buildMachines.removeAll()
        for machine in machines { await machine.destroy() }
    }
}
