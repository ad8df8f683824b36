import Foundation
import Logging
import OmniRunError
import OmniRunStore
import SMTPClient

#if canImport(Glibc)
import Glibc
#endif

/// Sends the server's mail: through SMTP when it is configured, otherwise into the
/// outbox folder (files of mode 0600 in a folder of mode 0700), so that a single-box
/// install can still sign people in. A message's subject and text hold sign-in codes and
/// links: they are never logged, at any level.
package struct Mailer: Sendable {
    package let smtp: SMTPConfiguration?
    /// `From:` when SMTP is not configured.
    package let sender: String
    package let outbox: String
    package let logger: Logger

    package var delivers: Bool { smtp != nil }

    package func send(to recipient: String, subject: String, text: String) async throws {
        let message = MailMessage(
            from: smtp?.sender ?? sender, to: recipient, subject: subject, text: text,
            messageID: "\(randomID("m", bytes: 12))@\(Self.domain(of: smtp?.sender ?? sender))")
        if let smtp {
            do {
                try await SMTPClient(configuration: smtp, logger: logger).send(message)
                return
            } catch let error as OmniRunError {
                logger.error("mail not sent", metadata: ["to": "\(recipient)", "error": "\(error.message)"])
                if error.code == .invalidArgument { throw error }
                throw OmniRunError(.unavailable, "the sign-in email could not be sent; try again later")
            }
        }
        try FileManager.default.createDirectory(
            atPath: outbox, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = outbox + "/\(nowMillis())-\(randomID("", bytes: 4)).eml"
        chmod(outbox, 0o700)
        // Created with mode 0600 (never readable by others, not even for a moment).
        let bytes = Array(message.rendered().utf8)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OmniRunError(.internalError, "cannot write to the outbox \(outbox)") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw OmniRunError(.internalError, "cannot write to the outbox \(outbox)") }
            offset += n
        }
        logger.notice(
            "no SMTP server is configured: the message is in the outbox", metadata: ["to": "\(recipient)", "file": "\(path)"])
    }

    package static func domain(of mailbox: String) -> String {
        let address = MailMessage.address(of: mailbox)
        guard let at = address.lastIndex(of: "@") else { return "localhost" }
        return String(address[address.index(after: at)...])
    }
}

/// Email addresses as accounts know them: trimmed, lower-cased, and plausible.
package enum EmailAddress {
    package static func normalize(_ text: String?) throws -> String {
        guard let text else { throw OmniRunError(.invalidArgument, "email is required") }
        let email = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard isValid(email) else { throw OmniRunError(.invalidArgument, "'\(text.prefix(100))' is not a valid email address") }
        return email
    }

    /// `local@domain.tld`: printable ASCII, no spaces or brackets, a dotted domain.
    package static func isValid(_ email: String) -> Bool {
        guard email.utf8.count <= 254, let at = email.lastIndex(of: "@") else { return false }
        let local = email[..<at]
        let domain = email[email.index(after: at)...]
        guard !local.isEmpty, local.utf8.count <= 64, !domain.isEmpty else { return false }
        let localAllowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.!#$%&'*+/=?^_`{|}~-".utf8)
        guard local.utf8.allSatisfy({ localAllowed.contains($0) }), !local.hasPrefix("."), !local.hasSuffix("."),
            !local.contains("..")
        else { return false }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return false }
        let labelAllowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-".utf8)
        return labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.utf8.allSatisfy { labelAllowed.contains($0) }
                && !label.hasPrefix("-") && !label.hasSuffix("-")
        }
    }
}
