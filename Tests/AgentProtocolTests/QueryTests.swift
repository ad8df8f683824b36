import AgentProtocol
import Foundation
import Testing

@Suite struct QueryTests {
    @Test(arguments: ["/tmp/a b", "/tmp/ünïcode/ø", "a&b=c?d", "%41", "+plus", ""])
    func escapeRoundTrips(_ value: String) {
        let uri = "/v1/files/read?" + AgentQuery.encode([("path", value), ("user", "root")])
        let (path, params) = AgentQuery.parse(uri)
        #expect(path == "/v1/files/read")
        #expect(params["path"] == value)
        #expect(params["user"] == "root")
    }

    @Test func processEventRoundTrip() throws {
        let event = ProcessEvent(type: .stdout, pid: 12, data: Data([0, 1, 255]).base64EncodedString())
        let decoded = try JSONDecoder().decode(ProcessEvent.self, from: JSONEncoder().encode(event))
        #expect(decoded == event)
        #expect(decoded.bytes == [0, 1, 255])
    }
}
