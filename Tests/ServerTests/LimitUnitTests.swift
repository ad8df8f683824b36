import NIOCore
import Testing

@testable import OmniRunControl
@testable import OmniRunServer

@Suite("Connection limits: settings, gateway slots, head framing")
struct LimitUnitTests {
    @Test func settingsAreReadAndBadOnesRefused() throws {
        var limits = ConnectionLimits()
        #expect(limits.gatewayConnections == 64 && limits.apiConnections == 2048 && limits.maxHeaderBytes == 65536)
        try limits.apply([
            "OMNIRUN_MAX_CONNECTIONS": "10", "OMNIRUN_GATEWAY_MAX_CONNECTIONS": "3", "OMNIRUN_HEADER_TIMEOUT": "1.5",
            "OMNIRUN_MAX_CONNECTIONS_PER_ADDRESS": "0", "OMNIRUN_GATEWAY_IDLE_TIMEOUT": "8",
        ])
        #expect(limits.apiConnections == 10 && limits.gatewayConnections == 3 && limits.connectionsPerAddress == 0)
        #expect(limits.headerTimeout == .milliseconds(1500) && limits.gatewayIdleTimeout == .seconds(8))
        for (name, value) in [
            ("OMNIRUN_MAX_CONNECTIONS", "0"), ("OMNIRUN_MAX_CONNECTIONS", "-5"), ("OMNIRUN_GATEWAY_MAX_CONNECTIONS", "many"),
            ("OMNIRUN_HEADER_TIMEOUT", "0"), ("OMNIRUN_KEEPALIVE_TIMEOUT", "nan"), ("OMNIRUN_PREVIEW_IDLE_TIMEOUT", "1e300"),
            ("OMNIRUN_MAX_HEADER_BYTES", "10"), ("OMNIRUN_MAX_CONNECTIONS", "99999999999999999999"),
        ] {
            var again = ConnectionLimits()
            #expect(throws: (any Error).self, "\(name)=\(value)") { try again.apply([name: value]) }
        }
    }

    /// Waiting requests and served connections together never pass the limit, whatever
    /// order accepts, failures and ends come in.
    @Test func gatewaySlotsNeverPassTheLimit() {
        var slots = GatewaySlots(limit: 4, spare: 3)
        #expect(slots.toOpen() == 3)
        #expect(slots.toOpen() == 0)
        slots.accepted()
        #expect(slots.toOpen() == 1)  // 1 serving + 3 waiting
        slots.accepted()
        slots.accepted()
        #expect(slots.toOpen() == 0)  // 3 serving + 1 waiting = 4
        slots.accepted()
        #expect(slots.isFull && slots.waiting == 0 && slots.toOpen() == 0)
        slots.ended()
        #expect(slots.toOpen() == 1)
        slots.failed()
        #expect(slots.toOpen() == 1)
        // Random orders: the sum stays within the limit.
        var generator = SystemRandomNumberGenerator()
        for limit in [1, 2, 5, 64] {
            var state = GatewaySlots(limit: limit)
            for _ in 0..<5000 {
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: _ = state.toOpen()
                case 1: if state.waiting > 0 { state.accepted() }
                case 2: if state.waiting > 0 { state.failed() }
                default: if state.serving > 0 { state.ended() }
                }
                #expect(state.serving + state.waiting <= limit)
            }
        }
    }

    @Test func theFramerKnowsWhenAHeadIsUnderWay() throws {
        var framer = RequestFramer(maxHeadSize: 1024)
        #expect(!framer.isInsideHead)
        _ = try framer.feed(ByteBuffer(string: "GET / HT"))
        #expect(framer.isInsideHead)
        let events = try framer.feed(ByteBuffer(string: "TP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab"))
        #expect(events.count == 2 && !framer.isInsideHead)
        _ = try framer.feed(ByteBuffer(string: "c"))
        #expect(!framer.isInsideHead)
        _ = try framer.feed(ByteBuffer(string: "\r\n"))
        #expect(!framer.isInsideHead)
        _ = try framer.feed(ByteBuffer(string: "P"))
        #expect(framer.isInsideHead)
        #expect(throws: (any Error).self) { try framer.feed(ByteBuffer(string: String(repeating: "x", count: 2000))) }
    }
}
