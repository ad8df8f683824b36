import Foundation
import OmniRunError

/// How many connections the server's listeners hold and for how long: the API, the
/// preview gateway, and each sandbox's host gateway (`127.0.0.1:18080` in the guest).
/// Each is a setting read from the environment variable named beside it (docs/security.md).
public struct ConnectionLimits: Sendable {
    /// `OMNIRUN_MAX_CONNECTIONS`: connections the API holds open at once (default 2048).
    /// Past it the API accepts no more until one closes; new ones wait in the listen backlog.
    public var apiConnections = 2048
    /// `OMNIRUN_PREVIEW_MAX_CONNECTIONS`: the same for the preview gateway (default 2048).
    public var previewConnections = 2048
    /// `OMNIRUN_MAX_CONNECTIONS_PER_ADDRESS`: connections one client address may hold on
    /// each of the two listeners (default 256; 0: no limit per address, e.g. behind a proxy
    /// that is the only client). One past it is answered 503 and closed.
    public var connectionsPerAddress = 256
    /// `OMNIRUN_HEADER_TIMEOUT` (seconds, default 20): a request's head (request line and
    /// fields) must arrive whole within this, counted from the connection's start or from the
    /// first byte of a kept-alive connection's next request; else 408 and the connection closes.
    public var headerTimeout: Duration = .seconds(20)
    /// `OMNIRUN_KEEPALIVE_TIMEOUT` (seconds, default 60): an API connection with no request in
    /// progress (kept alive, or sending a body with pauses) closes after this long.
    public var keepAliveTimeout: Duration = .seconds(60)
    /// `OMNIRUN_PREVIEW_IDLE_TIMEOUT` (seconds, default 300): a preview connection (a
    /// WebSocket included) over which no byte moved either way for this long closes.
    public var previewIdleTimeout: Duration = .seconds(300)
    /// `OMNIRUN_MAX_HEADER_BYTES` (default 65536): the largest request head (request line and
    /// fields) on every listener; a larger one is answered 431 and the connection closes.
    public var maxHeaderBytes = 64 << 10
    /// `OMNIRUN_GATEWAY_MAX_CONNECTIONS`: guest connections to the host gateway that the host
    /// serves at once per sandbox (default 64). The rest wait in the guest (the agent keeps a
    /// few and refuses more) until one of these ends.
    public var gatewayConnections = 64
    /// `OMNIRUN_GATEWAY_IDLE_TIMEOUT` (seconds, default 60): a gateway connection with no
    /// request in progress, or whose guest takes none of its answer, closes after this long.
    public var gatewayIdleTimeout: Duration = .seconds(60)

    public init() {}

    public mutating func apply(_ env: [String: String]) throws {
        func count(_ name: String, minimum: Int) throws -> Int? {
            guard let text = env[name], !text.isEmpty else { return nil }
            guard let value = Int(text), value >= minimum, value <= 1_000_000 else {
                throw OmniRunError(.invalidArgument, "\(name) must be a whole number from \(minimum) to 1000000")
            }
            return value
        }
        func seconds(_ name: String) throws -> Duration? {
            guard let text = env[name], !text.isEmpty else { return nil }
            guard let value = Double(text), value.isFinite, value > 0, value <= 86_400 else {
                throw OmniRunError(.invalidArgument, "\(name) must be a number of seconds above 0 and at most 86400")
            }
            return .milliseconds(Int64((value * 1000).rounded()))
        }
        if let value = try count("OMNIRUN_MAX_CONNECTIONS", minimum: 1) { apiConnections = value }
        if let value = try count("OMNIRUN_PREVIEW_MAX_CONNECTIONS", minimum: 1) { previewConnections = value }
        if let value = try count("OMNIRUN_MAX_CONNECTIONS_PER_ADDRESS", minimum: 0) { connectionsPerAddress = value }
        if let value = try count("OMNIRUN_MAX_HEADER_BYTES", minimum: 1024) { maxHeaderBytes = value }
        if let value = try count("OMNIRUN_GATEWAY_MAX_CONNECTIONS", minimum: 1) { gatewayConnections = value }
        if let value = try seconds("OMNIRUN_HEADER_TIMEOUT") { headerTimeout = value }
        if let value = try seconds("OMNIRUN_KEEPALIVE_TIMEOUT") { keepAliveTimeout = value }
        if let value = try seconds("OMNIRUN_PREVIEW_IDLE_TIMEOUT") { previewIdleTimeout = value }
        if let value = try seconds("OMNIRUN_GATEWAY_IDLE_TIMEOUT") { gatewayIdleTimeout = value }
    }
}
