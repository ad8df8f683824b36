import Crypto
import Foundation
import NIOCore
import OmniRunControl
import OmniRunCore
import OmniRunError
import OmniRunStore
import SandboxRuntime

extension PreviewAccess {
    /// The value of one cookie in the `Cookie` fields of a head.
    static func cookieValue(_ name: String, in head: RequestHead) -> String? {
        for field in head.values("cookie") {
            for pair in field.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                    return parts[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }

    /// The target with one query parameter removed, and that parameter's value.
    static func takeQuery(_ name: String, from target: String) -> (target: String, value: String?) {
        guard let mark = target.firstIndex(of: "?") else { return (target, nil) }
        let path = String(target[..<mark])
        var value: String?
        let kept = target[target.index(after: mark)...].split(separator: "&").filter { pair in
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.first.map(String.init) == name {
                value = parts.count > 1 ? String(parts[1]) : ""
                return false
            }
            return true
        }
        return (kept.isEmpty ? path : path + "?" + kept.joined(separator: "&"), value)
    }
}

/// Where a connection's requests go once its first request was admitted.
struct PreviewTarget: Sendable {
    let sandbox: Sandbox
    let port: Int
    let exposureID: String?
    let policy: PreviewPolicy
}

/// What every request of a connection must carry, and how its head is changed for the sandbox.
struct PreviewPolicy: Sendable {
    /// The Host (without port) the connection was admitted for.
    let hostName: String
    /// SHA-256 of secure mode's traffic token, when the sandbox is secure.
    let trafficTokenHash: String?
    /// The tokens of the port's private exposures: one of them must come with every request
    /// (empty: the port is not private).
    let exposureTokens: [String]
    /// The Host the sandbox sees; nil keeps the client's.
    let hostOverride: String?
    let scheme: String

    /// Whether a request may pass (every request of a kept-alive connection is checked).
    func admits(_ head: RequestHead) -> Bool {
        guard head.hostName == hostName else { return false }
        if let trafficTokenHash {
            guard let token = head.value(PreviewAccess.trafficTokenHeader),
                Secrets.equal(Secrets.sha256Hex(token), trafficTokenHash)
            else { return false }
        }
        if !exposureTokens.isEmpty {
            let offered = head.value(PreviewAccess.tokenHeader) ?? PreviewAccess.cookieValue(PreviewAccess.cookie, in: head)
                ?? PreviewAccess.takeQuery(PreviewAccess.queryToken, from: head.target).value
            guard let offered, opens(with: offered) else { return false }
        }
        return true
    }

    /// Whether `token` is one of the port's private exposures' tokens (compared in constant time).
    func opens(with token: String) -> Bool {
        var found = false
        for expected in exposureTokens where Secrets.equal(token, expected) { found = true }
        return found
    }

    /// The head as the sandbox sees it: the gateway's credentials removed, the Host set.
    func rewrite(_ head: RequestHead) -> RequestHead {
        var head = head
        head.remove(PreviewAccess.trafficTokenHeader)
        head.remove(PreviewAccess.tokenHeader)
        head.remove(PreviewNodeRoute.header.lowercased())
        if !exposureTokens.isEmpty {
            head.target = PreviewAccess.takeQuery(PreviewAccess.queryToken, from: head.target).target
        }
        let cookies = head.values("cookie").flatMap { $0.split(separator: ";") }.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.hasPrefix(PreviewAccess.cookie + "=") && !$0.isEmpty }
        head.remove("cookie")
        if !cookies.isEmpty { head.fields.append(("Cookie", cookies.joined(separator: "; "))) }
        if let hostOverride, let original = head.value("host") {
            head.set("Host", hostOverride)
            head.set("X-Forwarded-Host", original)
        }
        head.set("X-Forwarded-Proto", scheme)
        return head
    }
}

/// What the gateway does with a connection's first request.
enum PreviewDecision: Sendable {
    case forward(PreviewTarget)
    /// Another node runs the sandbox: the connection goes on to its preview gateway.
    case relay(PreviewNodeRoute)
    /// An answer of the gateway's own (an error, or the redirect that turns a private
    /// exposure's query token into a cookie); the connection then closes.
    case reply(ByteBuffer)

    static func error(_ status: Int, _ reason: String, code: String, message: String, extra: String = "") -> PreviewDecision {
        .reply(ListenerReply.make(status, reason, code: code, message: message, extra: extra))
    }

    static func redirect(to location: String, cookie: String) -> PreviewDecision {
        var text = "HTTP/1.1 302 Found\r\nLocation: \(location)\r\n"
        text += "Set-Cookie: \(PreviewAccess.cookie)=\(cookie); Path=/; HttpOnly; SameSite=Lax\r\n"
        text += "Content-Length: 0\r\nConnection: close\r\n\r\n"
        return .reply(ByteBuffer(string: text))
    }
}

extension ExposureService {
    /// Routes a connection's first request by its Host: an exposure's own hostname, or
    /// `{sandboxID}-{port}.{domain}`; then checks secure mode and private tokens. A port with
    /// a live private exposure wants one of its tokens on every name that reaches it. Error
    /// pages name no sandbox or exposure (the public reads them).
    func resolve(_ head: RequestHead) async -> PreviewDecision {
        guard let host = head.hostName else {
            return .error(400, "Bad Request", code: "invalid_argument", message: "the request has no Host header")
        }
        let suffix = "." + settings.domain
        guard host.hasSuffix(suffix), host.count > suffix.count else {
            return .error(404, "Not Found", code: "not_found", message: "no preview answers for this host")
        }
        var label = String(host.dropLast(suffix.count))
        // `{name}.{region}.{domain}`: the region is for DNS (a region's nodes answer its
        // names); any node finds the sandbox by its id, so the label before it is what counts.
        if let dot = label.lastIndex(of: ".") {
            let region = label[label.index(after: dot)...]
            guard !region.isEmpty, !label[..<dot].contains("."),
                region.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" })
            else {
                return .error(404, "Not Found", code: "not_found", message: "no preview answers for this host")
            }
            label = String(label[..<dot])
        }
        var exposure: ExposureRecord?
        let sandboxID: SandboxID
        let port: Int
        if let found = try? await repository.find(hostname: host) {
            let record = await current(found)
            switch record.status {
            case "revoked":
                return .error(404, "Not Found", code: "revoked", message: "this exposure was revoked")
            case "expired":
                return .error(410, "Gone", code: "expired", message: "this exposure expired")
            case "sandbox_stopped":
                return .error(502, "Bad Gateway", code: "sandbox_stopped", message: "the sandbox of this exposure has stopped")
            default: break
            }
            guard let id = SandboxID(record.sandboxID) else {
                return .error(404, "Not Found", code: "not_found", message: "no preview answers for this host")
            }
            exposure = record
            sandboxID = id
            port = record.port
        } else if let dash = label.lastIndex(of: "-"), let id = SandboxID(String(label[..<dash])),
            let number = Int(label[label.index(after: dash)...]), (1...65535).contains(number)
        {
            sandboxID = id
            port = number
        } else {
            return .error(404, "Not Found", code: "not_found", message: "no preview answers for this host")
        }
        if let elsewhere = await ownedElsewhere(sandboxID, head: head) { return elsewhere }
        let sandbox: Sandbox
        do {
            sandbox = try await sandboxes.sandbox(sandboxID.rawValue, account: nil)
        } catch let error as OmniRunError where error.code == .conflict {
            // Paused, or being paused, resumed or forked: it comes back; its exposures stay.
            return .error(
                503, "Service Unavailable", code: "unavailable", message: "this sandbox is paused or busy; try again once it runs",
                extra: "Retry-After: 5\r\n")
        } catch let error as OmniRunError where error.code == .notFound {
            if exposure != nil {
                await sandboxStopped(sandboxID.rawValue)
                return .error(502, "Bad Gateway", code: "sandbox_stopped", message: "the sandbox of this exposure has stopped")
            }
            return .error(404, "Not Found", code: "not_found", message: "no preview answers for this host")
        } catch {
            return .error(503, "Service Unavailable", code: "unavailable", message: "the preview gateway cannot reach this sandbox now")
        }
        let sandboxNetwork = await networkSettings(sandboxID.rawValue)
        let hostOverride: String? =
            if let mask = sandboxNetwork?.maskRequestHost {
                mask.replacingOccurrences(of: "${PORT}", with: "\(port)")
            } else if let exposure, !exposure.preserveHost {
                "localhost:\(port)"
            } else {
                nil
            }
        let tokens: [String]
        if let exposure {
            tokens = exposure.visibility == "private" ? [accessToken(exposure.id)] : []
        } else {
            // The direct name reaches the port as its private exposures do: with one of their tokens.
            guard let found = await privateTokens(sandboxID: sandboxID.rawValue, port: port) else {
                return .error(503, "Service Unavailable", code: "unavailable", message: "the preview gateway cannot check this port now")
            }
            tokens = found
        }
        let policy = PreviewPolicy(
            hostName: host, trafficTokenHash: sandboxNetwork?.trafficTokenHash, exposureTokens: tokens, hostOverride: hostOverride,
            scheme: self.settings.scheme)
        let target = PreviewTarget(sandbox: sandbox, port: port, exposureID: exposure?.id, policy: policy)
        if let hash = policy.trafficTokenHash {
            guard let token = head.value(PreviewAccess.trafficTokenHeader),
                Secrets.equal(Secrets.sha256Hex(token), hash)
            else {
                return .error(
                    403, "Forbidden", code: "forbidden",
                    message: "this sandbox is in secure mode: send its traffic token in the \(PreviewAccess.trafficTokenHeader) header")
            }
        }
        if !policy.exposureTokens.isEmpty {
            // The token of `accessUrl` is swapped for a cookie, and the URL cleaned.
            let (cleaned, offered) = PreviewAccess.takeQuery(PreviewAccess.queryToken, from: head.target)
            if let offered, policy.opens(with: offered) {
                return .redirect(to: cleaned, cookie: offered)
            }
            guard policy.admits(head) else {
                return .error(
                    401, "Unauthorized", code: "unauthorized",
                    message: "this port is exposed privately: open its exposure's accessUrl, or send its token")
            }
        }
        guard await checkListening(sandbox, port: port) else {
            return .error(502, "Bad Gateway", code: "unavailable", message: "nothing answers on port \(port) of this sandbox")
        }
        return .forward(target)
    }

    /// Where a sandbox that does not run here runs: another node's preview gateway, or an
    /// error page if that node cannot be reached (nil: this node's, or no live sandbox).
    func ownedElsewhere(_ id: SandboxID, head: RequestHead) async -> PreviewDecision? {
        guard await sandboxes.runtime.sandbox(id) == nil,
            let record = try? await sandboxes.record(id.rawValue, account: nil), let owner = record.nodeID,
            owner != sandboxes.configuration.nodeID
        else { return nil }
        guard head.value(PreviewNodeRoute.header.lowercased()) == nil else {
            return .error(503, "Service Unavailable", code: "unavailable", message: "the nodes disagree about where this sandbox runs; try again")
        }
        guard let node = try? await sandboxes.nodes.find(id: owner), node.isUp(at: nowMillis()) else {
            return .error(
                503, "Service Unavailable", code: "unavailable", message: "the node that runs this sandbox is down; try again later",
                extra: "Retry-After: 5\r\n")
        }
        guard let url = node.advertiseURL, let host = PreviewNodeRoute.host(ofAdvertiseURL: url), let port = node.previewPort else {
            return .error(503, "Service Unavailable", code: "unavailable", message: "the node that runs this sandbox has no preview gateway this node can reach")
        }
        return .relay(PreviewNodeRoute(node: owner, host: host, port: port))
    }

    /// The tokens of the live private exposures of a sandbox's port (nil: the store failed).
    func privateTokens(sandboxID: String, port: Int) async -> [String]? {
        let now = nowMillis()
        guard let records = try? await repository.list(sandboxID: sandboxID) else { return nil }
        return records.filter { $0.port == port && $0.visibility == "private" && $0.isLive && $0.expiresAt > now }
            .map { accessToken($0.id) }
    }
}
