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
        .executable(name: "omni", targets: ["omni"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
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
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
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
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "CKVMProbe"),
        .target(name: "CVMMLauncher"),
        .target(
            name: "QEMUDriver",
            dependencies: [
                "OmniRunError", "OmniRunCore", "CKVMProbe", "CVMMLauncher",
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
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Custom templates: Dockerfile parsing and builds in build machines.
        .target(
            name: "TemplateBuilder",
            dependencies: [
                "SandboxRuntime", "OmniRunCore", "OmniRunError", "AgentClient", "AgentProtocol",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The store: one query layer over SQLite (embedded) and PostgreSQL.
        .target(
            name: "OmniRunStore",
            dependencies: [
                "OmniRunError",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Outbound mail: a small SMTP client (STARTTLS or implicit TLS, AUTH PLAIN/LOGIN).
        .target(
            name: "SMTPClient",
            dependencies: [
                "OmniRunError",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The LLM proxy's outside world: configured OpenAI-compatible upstreams, model
        // routing, prices, and the HTTP client that calls them.
        .target(
            name: "LLMUpstreams",
            dependencies: [
                "OmniRunError",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // zlib, for the PNG codec (screenshot scaling).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // RGB images: PNG decode/encode and area-average downscaling (desktop screenshots).
        .target(name: "ScreenImage", dependencies: ["CZlib", "OmniRunError"], swiftSettings: swiftSettings),
        // The control plane: sandboxes (create, fork, pause, limits, timeouts), exposures,
        // templates and builds, webhooks, vault, e2ee keys, sign-in and mail, spend, metrics.
        // No HTTP: the edge (OmniRunServer) decodes, calls one of its methods, encodes.
        .target(
            name: "OmniRunControl",
            dependencies: [
                "OmniRunCore", "OmniRunError", "OmniRunStore", "SandboxRuntime", "AgentProtocol", "SMTPClient", "LLMUpstreams",
                "TemplateBuilder", "OmniRunE2EE",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The HTTP edge: the REST API of the public SDK's wire protocol, the preview gateway
        // and the sandboxes' host gateway, over the control plane.
        .target(
            name: "OmniRunServer",
            dependencies: [
                "OmniRunControl", "OmniRunCore", "OmniRunError", "OmniRunStore", "SandboxRuntime", "AgentClient", "AgentProtocol",
                "SMTPClient", "LLMUpstreams", "TemplateBuilder", "ScreenImage", "OmniRunE2EE",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OmniRunCLI",
            dependencies: [
                "OmniRunCore", "QEMUDriver", "AgentClient", "AgentProtocol", "SandboxRuntime", "OmniRunServer", "OmniRunControl",
                "OmniRunStore", "ScreenImage", "TemplateBuilder",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "omnirun", dependencies: ["OmniRunCLI"], swiftSettings: swiftSettings),
        // The client CLI `omni`: only HTTP to a server (no runtime, no store).
        // The e2ee envelope of wire protocol §12, shared by the server and `omni`.
        .target(
            name: "OmniRunE2EE",
            dependencies: ["OmniRunError", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OmniCLI",
            dependencies: [
                "OmniRunError", "OmniRunE2EE",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "omni", dependencies: ["OmniCLI"], swiftSettings: swiftSettings),
        .target(
            name: "TestSupport",
            dependencies: [
                "OmniRunCore", "QEMUDriver", "AgentClient", "AgentProtocol", "SandboxRuntime",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OmniCLITests",
            dependencies: ["OmniCLI", "OmniRunE2EE", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "OmniRunCoreTests", dependencies: ["OmniRunCore", "OmniRunError"], swiftSettings: swiftSettings),
        .testTarget(name: "AgentProtocolTests", dependencies: ["AgentProtocol"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GuestAgentTests",
            dependencies: [
                "GuestAgent", "AgentProtocol", "AgentClient", "CAgentSupport", "OmniRunError",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(name: "ScreenImageTests", dependencies: ["ScreenImage", "OmniRunError"], swiftSettings: swiftSettings),
        .testTarget(name: "BenchTests", dependencies: ["OmniRunCLI"], swiftSettings: swiftSettings),
        .testTarget(
            name: "TemplateBuilderTests", dependencies: ["TemplateBuilder", "OmniRunError"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SandboxRuntimeTests", dependencies: ["SandboxRuntime", "AgentClient", "AgentProtocol", "OmniRunCore", "OmniRunError"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StoreTests", dependencies: ["OmniRunStore", "OmniRunError"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "TestSupport", "OmniRunServer", "OmniRunControl", "OmniRunStore", "SandboxRuntime", "OmniRunCore", "SMTPClient", "LLMUpstreams", "QEMUDriver", "AgentClient", "OmniRunE2EE",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The control plane on in-memory machines (`MemoryMachineDriver`): no VM, no QEMU.
        .testTarget(
            name: "ControlPlaneTests",
            dependencies: [
                "TestSupport", "OmniRunServer", "OmniRunControl", "OmniRunStore", "SandboxRuntime", "OmniRunCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RuntimeIntegrationTests",
            dependencies: ["TestSupport", "OmniRunCore", "QEMUDriver", "AgentClient", "AgentProtocol", "SandboxRuntime", "OmniRunError"],
            swiftSettings: swiftSettings
        ),
    ]
)
