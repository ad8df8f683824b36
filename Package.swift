// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "omnirun",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "omnirun", targets: ["omnirun"]),
        .executable(name: "omnirun-agent", targets: ["omnirun-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // Leaf: the one error type.
        .target(name: "OmniRunError", swiftSettings: swiftSettings),
        // The host <-> guest wire contract: the only module both sides import.
        .target(name: "AgentProtocol", swiftSettings: swiftSettings),
        // Domain core: no NIO, no server, no database.
        .target(
            name: "OmniRunCore",
            dependencies: ["OmniRunError", "AgentProtocol", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Guest side.
        .target(name: "CAgentSupport"),
        .target(
            name: "GuestAgent",
            dependencies: [
                "AgentProtocol", "CAgentSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "omnirun-agent", dependencies: ["GuestAgent"], swiftSettings: swiftSettings),
        // Host side.
        .target(
            name: "AgentClient",
            dependencies: [
                "AgentProtocol", "OmniRunError", "OmniRunCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "CKVMProbe"),
        .target(
            name: "QEMUDriver",
            dependencies: [
                "OmniRunError", "OmniRunCore", "CKVMProbe",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Host orchestration: templates' snapshots and sandboxes on one node.
        .target(
            name: "SandboxRuntime",
            dependencies: [
                "OmniRunCore", "OmniRunError", "AgentClient", "AgentProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OmniRunCLI",
            dependencies: [
                "OmniRunCore", "QEMUDriver", "AgentClient", "AgentProtocol", "SandboxRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "omnirun", dependencies: ["OmniRunCLI"], swiftSettings: swiftSettings),
        .target(
            name: "TestSupport",
            dependencies: ["OmniRunCore", "QEMUDriver", "AgentClient", "SandboxRuntime"],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "OmniRunCoreTests", dependencies: ["OmniRunCore", "OmniRunError"], swiftSettings: swiftSettings),
        .testTarget(name: "AgentProtocolTests", dependencies: ["AgentProtocol"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RuntimeIntegrationTests",
            dependencies: ["TestSupport", "OmniRunCore", "QEMUDriver", "AgentClient", "AgentProtocol", "SandboxRuntime", "OmniRunError"],
            swiftSettings: swiftSettings
        ),
    ]
)
