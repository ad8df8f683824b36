import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import OmniRunError

/// One delivery attempt over HTTP: the receiver's name is resolved once and checked
/// (`WebhookAddressPolicy`), and the connection goes to exactly that address, with the
/// URL's own host in `Host` and in TLS's server name (and its certificate checked for
/// it). What is recorded says what failed without saying how a port answered: every
/// failure to get an HTTP answer reads the same, so deliveries cannot map a network.
package struct WebhookSender: Sendable {
    package let policy: WebhookAddressPolicy

    package struct Outcome: Sendable, Equatable {
        /// The receiver's status code, when it answered.
        package var status: Int?
        /// Why the attempt failed (nil: a 2xx answer).
        package var failure: String?
        /// Where the connection went (for tests and logs; nil when refused before connecting).
        package var address: String?
    }

    package static let noAnswer = "no HTTP answer from the receiver (the connection failed, was closed or timed out)"

    package func send(url: String, headers: [(String, String)], body: [UInt8]) async -> Outcome {
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            return Outcome(failure: "the URL has no host")
        }
        let address: String
        do {
            address = try await policy.resolveChecked(host: host)
        } catch let error as WebhookError {
            return Outcome(failure: error.message)
        } catch let error as OmniRunError {
            return Outcome(failure: error.message)
        } catch {
            return Outcome(failure: "\(error)")
        }
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
        configuration.redirectConfiguration = .disallow
        // The checked address, for this client only: AsyncHTTPClient connects there and
        // still sends the URL's host as Host and SNI.
        if WebhookAddressPolicy.parse(WebhookAddressPolicy.bare(host)) == nil {
            configuration.dnsOverride = [host: address]
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { Task { try? await client.shutdown() } }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: .seconds(10))
            let status = Int(response.status.code)
            // The body is drained (bounded) and never recorded.
            _ = try? await response.body.collect(upTo: 64 << 10)
            let failure = (200..<300).contains(status) ? nil : "the receiver answered \(status)"
            return Outcome(status: status, failure: failure, address: address)
        } catch {
            return Outcome(failure: Self.noAnswer, address: address)
        }
    }
}
