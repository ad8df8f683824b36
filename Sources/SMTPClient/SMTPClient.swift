import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import OmniRunError

/// Where and how mail is handed over.
public struct SMTPConfiguration: Sendable {
    public enum Security: String, Sendable, CaseIterable {
        /// Plain text (a relay on the same machine or network).
        case none
        /// Plain connection upgraded with STARTTLS (port 587); refused if the server does not offer it.
        case startTLS = "starttls"
        /// TLS from the first byte (port 465).
        case tls
    }

    public var host: String
    public var port: Int
    public var security: Security
    public var username: String?
    public var password: String?
    /// `From:` of every message: `Name <address>` or an address.
    public var sender: String
    /// The name this host gives in EHLO.
    public var heloName: String = "omnirun.localhost"
    /// The whole conversation must finish within this.
    public var timeout: Duration = .seconds(30)
    /// PEM file (or directory) of CA certificates to trust instead of the system's.
    public var trustRootsPath: String?
    /// Whether the server's certificate is checked (only ever off for a local test relay).
    public var verifyCertificate: Bool = true

    public init(host: String, port: Int, security: Security, sender: String, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.security = security
        self.sender = sender
        self.username = username
        self.password = password
    }
}

/// A small SMTP client (RFC 5321): EHLO, optional STARTTLS, AUTH PLAIN or LOGIN,
/// one message per connection.
public struct SMTPClient: Sendable {
    public let configuration: SMTPConfiguration
    let logger: Logger
    let group: any EventLoopGroup

    public init(
        configuration: SMTPConfiguration, logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.logger = logger
        self.group = group
    }

    typealias Connection = NIOAsyncChannel<SMTPReply, ByteBuffer>

    /// Delivers `message` to the configured server.
    public func send(_ message: MailMessage) async throws {
        let configuration = self.configuration
        let tlsContext = configuration.security == .none ? nil : try makeTLSContext()
        let connection: Connection
        do {
            connection = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(10))
                .connect(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if configuration.security == .tls, let tlsContext {
                            try channel.pipeline.syncOperations.addHandler(
                                try NIOSSLClientHandler(context: tlsContext, serverHostname: Self.sniName(configuration.host)))
                        }
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SMTPReplyDecoder()))
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw OmniRunError(
                .unavailable, "cannot connect to the mail server \(configuration.host):\(configuration.port): \(error)")
        }
        // One deadline for the whole conversation: a stuck server closes the connection.
        let timedOut = NIOLockedValueBox(false)
        let deadline = connection.channel.eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(configuration.timeout))) {
            timedOut.withLockedValue { $0 = true }
            connection.channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var conversation = Conversation(
                    replies: inbound.makeAsyncIterator(), outbound: outbound, channel: connection.channel,
                    host: configuration.host)
                try await conversation.run(message, configuration: configuration, tlsContext: tlsContext, logger: logger)
            }
        } catch let error as OmniRunError {
            if timedOut.withLockedValue({ $0 }) { throw timeoutError() }
            throw error
        } catch {
            if timedOut.withLockedValue({ $0 }) { throw timeoutError() }
            throw OmniRunError(.unavailable, "the mail server \(configuration.host) went away: \(error)")
        }
        logger.info("mail sent", metadata: ["to": "\(message.to)", "server": "\(configuration.host):\(configuration.port)"])
    }

    private func timeoutError() -> OmniRunError {
        OmniRunError(.timeout, "the mail server \(configuration.host) did not finish within \(configuration.timeout)")
    }

    func makeTLSContext() throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let path = configuration.trustRootsPath, !path.isEmpty { tls.trustRoots = .file(path) }
        if !configuration.verifyCertificate { tls.certificateVerification = .none }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw OmniRunError(.invalidArgument, "cannot set up TLS for the mail server: \(error)")
        }
    }

    /// SNI only for names, never for address literals.
    static func sniName(_ host: String) -> String? {
        let isAddress = host.contains(":") || host.split(separator: ".").allSatisfy { UInt8($0) != nil }
        return isAddress ? nil : host
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }
}

/// One SMTP session, step by step.
struct Conversation {
    var replies: NIOAsyncChannelInboundStream<SMTPReply>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let channel: any Channel
    let host: String

    mutating func run(
        _ message: MailMessage, configuration: SMTPConfiguration, tlsContext: NIOSSLContext?, logger: Logger
    ) async throws {
        try await expect(220, "greeting")
        var extensions = try await ehlo(configuration.heloName)
        if configuration.security == .startTLS {
            guard extensions.contains(where: { $0.uppercased() == "STARTTLS" }), let tlsContext else {
                throw OmniRunError(.unavailable, "the mail server \(host) does not offer STARTTLS")
            }
            try await command("STARTTLS", expect: 220)
            let channel = self.channel
            let serverName = SMTPClient.sniName(host)
            try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(
                    try NIOSSLClientHandler(context: tlsContext, serverHostname: serverName), position: .first)
            }.get()
            extensions = try await ehlo(configuration.heloName)
        }
        if let username = configuration.username, !username.isEmpty {
            if configuration.security == .none {
                logger.warning("sending mail credentials without TLS", metadata: ["server": "\(host)"])
            }
            try await authenticate(username: username, password: configuration.password ?? "", extensions: extensions)
        }
        let from = MailMessage.address(of: message.from)
        let to = MailMessage.address(of: message.to)
        try await command("MAIL FROM:<\(from)>", expect: 250)
        let recipient = try await send("RCPT TO:<\(to)>")
        guard recipient.code == 250 || recipient.code == 251 else {
            if (550...553).contains(recipient.code) {
                throw OmniRunError(.invalidArgument, "the mail server does not accept \(to): \(recipient)")
            }
            throw OmniRunError(.unavailable, "the mail server refused RCPT TO: \(recipient)")
        }
        try await command("DATA", expect: 354)
        try await outbound.write(ByteBuffer(string: message.dataPayload()))
        try await expect(250, "message")
        _ = try? await send("QUIT")
    }

    private mutating func ehlo(_ name: String) async throws -> [String] {
        let reply = try await send("EHLO \(name)")
        guard reply.code == 250 else { throw OmniRunError(.unavailable, "the mail server refused EHLO: \(reply)") }
        // The first line greets; each other line names one extension ("STARTTLS", "AUTH PLAIN LOGIN").
        return Array(reply.lines.dropFirst())
    }

    private mutating func authenticate(username: String, password: String, extensions: [String]) async throws {
        let auth = extensions.first { $0.uppercased().hasPrefix("AUTH ") }?.uppercased().split(separator: " ") ?? []
        if auth.contains("PLAIN") || !auth.contains("LOGIN") {
            let token = Data(([0] + Array(username.utf8) + [0] + Array(password.utf8))).base64EncodedString()
            let reply = try await send("AUTH PLAIN \(token)")
            guard reply.code == 235 else { throw authFailure(reply) }
            return
        }
        try await command("AUTH LOGIN", expect: 334)
        try await command(Data(username.utf8).base64EncodedString(), expect: 334)
        let reply = try await send(Data(password.utf8).base64EncodedString())
        guard reply.code == 235 else { throw authFailure(reply) }
    }

    private func authFailure(_ reply: SMTPReply) -> OmniRunError {
        OmniRunError(.unavailable, "the mail server rejected the credentials: \(reply.code)")
    }

    private mutating func command(_ line: String, expect code: Int) async throws {
        let reply = try await send(line)
        guard reply.code == code else {
            let verb = line.split(separator: " ").first.map(String.init) ?? line
            throw OmniRunError(.unavailable, "the mail server answered \(verb) with \(reply)")
        }
    }

    private mutating func send(_ line: String) async throws -> SMTPReply {
        try await outbound.write(ByteBuffer(string: line + "\r\n"))
        return try await nextReply()
    }

    private mutating func expect(_ code: Int, _ what: String) async throws {
        let reply = try await nextReply()
        guard reply.code == code else { throw OmniRunError(.unavailable, "the mail server answered the \(what) with \(reply)") }
    }

    private mutating func nextReply() async throws -> SMTPReply {
        guard let reply = try await replies.next() else {
            throw OmniRunError(.unavailable, "the mail server \(host) closed the connection")
        }
        return reply
    }
}

/// One (possibly multi-line) server reply.
struct SMTPReply: Sendable, CustomStringConvertible {
    var code: Int
    var lines: [String]
    var description: String { "\(code) \(lines.joined(separator: " / "))" }
}

/// Splits the byte stream into replies: `250-…` lines continue, `250 …` ends one.
struct SMTPReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = SMTPReply
    private var lines: [String] = []
    static let maxLine = 4096

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > Self.maxLine { throw OmniRunError(.protocolViolation, "mail server reply line too long") }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex + 1
        var bytes = buffer.readBytes(length: length) ?? []
        // Work on bytes: in a String, "\r\n" is one Character.
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        let line = String(decoding: bytes, as: UTF8.self)
        guard bytes.count >= 3, let code = Int(String(decoding: bytes[0..<3], as: UTF8.self)) else {
            throw OmniRunError(.protocolViolation, "malformed mail server reply: \(line.prefix(80))")
        }
        let text = bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : ""
        lines.append(text)
        if bytes.count > 3, bytes[3] == UInt8(ascii: "-") { return .continue }
        context.fireChannelRead(NIOAny(SMTPReply(code: code, lines: lines)))
        lines = []
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue, buffer.readableBytes > 0 {}
        return .needMoreData
    }
}
