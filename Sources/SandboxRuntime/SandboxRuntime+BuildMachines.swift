import OmniRunCore

extension SandboxRuntime {
    /// Boots a machine that is not a sandbox (a template build step) in `<data>/builds/<name>`:
    /// `destroyAll()` takes it down too, and a later start removes what a crash left.
    ///
    /// With an egress policy the machine gets a network card exactly as a sandbox with
    /// internet access does (`HostNetwork.setUp`: its own namespace, TAP device, NAT, the
    /// namespace's and the host's firewalls, the domain proxy), so every rule that holds for
    /// sandboxes holds for builds; nil boots it without any network device.
    public func bootBuildMachine(image: MachineImage, name: String, egress: EgressPolicy? = nil) async throws -> any MachineInstance {
        var options = MachineOptions(name: name, directory: configuration.dataDirectory + "/builds/\(name)")
        var networkID: SandboxID?
        if let egress {
            let id = SandboxID.random()
            options.nic = try await network.setUp(id, policy: egress)
            networkID = id
            buildNetworks[name] = id
        }
        do {
            let machine = try await driver.boot(image: image, options: options, snapshotable: true)
            buildMachines[name] = machine
            return machine
        } catch {
            if let networkID {
                buildNetworks[name] = nil
                await network.tearDown(networkID)
            }
            throw error
        }
    }

    /// Forgets a build machine (its builder has destroyed or saved it) and removes its network.
    public func releaseBuildMachine(_ name: String) async {
        buildMachines[name] = nil
        if let id = buildNetworks.removeValue(forKey: name) { await network.tearDown(id) }
    }

    /// Why build machines cannot have a network card here (nil: they can).
    public func buildNetworkUnavailable() async -> String? {
        await network.availability()
    }

    /// Stops every build machine (a server shutting down; their builds fail).
    public func destroyBuildMachines() async {
        let machines = Array(buildMachines.values)
        buildMachines.removeAll()
        for machine in machines { await machine.destroy() }
        let networks = Array(buildNetworks.values)
        buildNetworks.removeAll()
        for id in networks { await network.tearDown(id) }
    }
}
