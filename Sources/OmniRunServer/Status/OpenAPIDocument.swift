import AgentProtocol
import Foundation
import OmniRunControl

/// The OpenAPI 3.1 description of every route this server serves (`GET /openapi.json`).
/// `routes` is also what the tests compare the router against.
enum OpenAPIDocument {
    struct Route {
        var method: String
        var path: String
        var summary: String
        var query: [String] = []
        var body: [String: Any]? = nil
        var open = false
        /// The schema of a query parameter that is not a plain string.
        var querySchemas: [String: [String: Any]] = [:]
    }

    nonisolated(unsafe) static let stringMap: [String: Any] = ["type": "object", "additionalProperties": ["type": "string"]]
    nonisolated(unsafe) static let pathBody: [String: Any] = [
        "type": "object", "required": ["path"], "properties": ["path": ["type": "string"], "user": ["type": "string"]],
    ]

    nonisolated(unsafe) static let routes: [Route] = [
        Route(method: "get", path: "/status", summary: "Node status", open: true),
        Route(method: "get", path: "/openapi.json", summary: "This document", open: true),
        Route(method: "get", path: "/metrics", summary: "The server's metrics (Prometheus text format)", open: true),
        Route(method: "get", path: "/health", summary: "Liveness: {status: \"ok\"} while the server serves", open: true),
        Route(
            method: "get", path: "/health/ready",
            summary: "Readiness: whether the store and the sandbox runtime answer (200, or 503 naming the one that did not)", open: true),
        Route(
            method: "post", path: "/sandboxes", summary: "Create a sandbox",
            body: [
                "type": "object",
                "properties": [
                    // templateID/templateId: synonyms of template (two that differ are refused).
                    "template": ["type": "string"], "templateID": ["type": "string"], "templateId": ["type": "string"],
                    "timeout": ["type": "integer", "minimum": 0, "maximum": 2_592_000],
                    // Without the field, metadata.vaultInject "true" asks for it too.
                    "vaultInject": ["type": "boolean"],
                    "envVars": stringMap, "metadata": stringMap, "memoryMB": ["type": "integer"],
                    // §12: with e2ee, later bodies and JSON answers travel as {"_encrypted": envelope}.
                    "e2ee": ["type": "boolean"], "clientPublicKey": ["type": "string"],
                    "secure": ["type": "boolean"], "maskRequestHost": ["type": "string"],
                    "autoPause": ["type": "boolean"],
                    // docs/multi-node.md: the region whose nodes may run it (default: the receiving node's).
                    "region": ["type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,39}$"],
                    // docs/networking.md: a network card and a route out, restricted by a policy.
                    "internet": ["type": "boolean"], "network": networkPolicy, "sniProxy": ["type": "boolean"],
                    "allowDomains": ["type": "array", "items": ["type": "string"], "maxItems": 256],
                ],
            ]),
        Route(
            method: "get", path: "/sandboxes",
            summary: "List running and paused sandboxes (limit: default and most 1000, larger is clamped; x-next-token for the next page)",
            query: ["limit", "next_token", "state", "metadata"]),
        Route(
            method: "get", path: "/sandboxes/history",
            summary:
                "Past sandboxes, newest first (limit default 100, at most 1000; offset skips; before: created before this time in ms)",
            query: ["limit", "offset", "before"]),
        Route(method: "get", path: "/templates", summary: "Templates with their resources and build state"),
        Route(method: "post", path: "/templates", summary: "Build a template (multipart: dockerfile, settings JSON, context tar)"),
        Route(method: "get", path: "/templates/{name}", summary: "One template"),
        Route(method: "delete", path: "/templates/{name}", summary: "Delete one of your templates"),
        Route(
            method: "get", path: "/templates/{name}/builds/{build}",
            summary:
                "A build: JSON with its log and each step's progress, or server-sent events (Accept: text/event-stream): log, step (n/total, line, command, running/cached/done/failed, elapsed) and end"
        ),
        Route(
            method: "post", path: "/webhooks", summary: "Register a webhook for lifecycle events (answers its signing secret)",
            body: [
                "type": "object", "required": ["url", "events"],
                "properties": ["url": ["type": "string"], "events": ["type": "array", "items": ["type": "string"]]],
            ]),
        Route(method: "get", path: "/webhooks", summary: "The account's webhooks"),
        Route(method: "delete", path: "/webhooks/{webhook}", summary: "Delete a webhook"),
        Route(method: "get", path: "/webhooks/{webhook}/deliveries", summary: "A webhook's deliveries and their attempts", query: ["limit"]),
        Route(method: "get", path: "/sandboxes/{id}", summary: "Sandbox info"),
        Route(method: "delete", path: "/sandboxes/{id}", summary: "Kill a sandbox"),
        Route(
            method: "post", path: "/sandboxes/{id}/timeout", summary: "Reset the auto-kill timer",
            body: ["type": "object", "required": ["timeout"], "properties": ["timeout": ["type": "integer", "minimum": 0]]]),
        Route(method: "post", path: "/sandboxes/{id}/pause", summary: "Save the whole sandbox (memory, devices, disk) and stop it"),
        Route(method: "post", path: "/sandboxes/{id}/resume", summary: "Bring a paused sandbox back exactly as it was"),
        Route(
            method: "get", path: "/sandboxes/{id}/metrics", summary: "CPU, memory and disk samples over the sandbox's life",
            query: ["limit"]),
        Route(
            method: "post", path: "/sandboxes/{id}/code", summary: "Run code once",
            body: ["type": "object", "required": ["code"], "properties": ["code": ["type": "string"], "language": ["type": "string"]]]),
        Route(
            method: "post", path: "/sandboxes/{id}/commands",
            summary: "Run a command (timeout: default 60 s in the foreground; a background command without one runs until it exits)",
            body: [
                "type": "object", "required": ["command"],
                "properties": [
                    "command": ["type": "string"], "timeout": ["type": "integer"], "cwd": ["type": "string"],
                    "envs": stringMap, "user": ["type": "string"], "background": ["type": "boolean"],
                ],
            ]),
        Route(method: "get", path: "/sandboxes/{id}/commands", summary: "List processes"),
        Route(method: "get", path: "/sandboxes/{id}/commands/{pid}", summary: "Process info and output"),
        Route(method: "delete", path: "/sandboxes/{id}/commands/{pid}", summary: "Kill a process"),
        Route(
            method: "post", path: "/sandboxes/{id}/commands/{pid}/stdin", summary: "Write to stdin",
            body: ["type": "object", "properties": ["data": ["type": "string"], "eof": ["type": "boolean"]]]),
        Route(method: "get", path: "/sandboxes/{id}/commands/{pid}/stream", summary: "Output as server-sent events"),
        Route(method: "get", path: "/sandboxes/{id}/files", summary: "Read a text file", query: ["path", "user"]),
        Route(
            method: "post", path: "/sandboxes/{id}/files", summary: "Write a text file",
            body: [
                "type": "object", "required": ["path"],
                "properties": ["path": ["type": "string"], "content": ["type": "string"], "user": ["type": "string"]],
            ]),
        Route(method: "delete", path: "/sandboxes/{id}/files", summary: "Remove a file or directory", query: ["path", "user"]),
        Route(method: "get", path: "/sandboxes/{id}/files/download", summary: "Download raw bytes", query: ["path", "user"]),
        Route(method: "post", path: "/sandboxes/{id}/files/upload", summary: "Upload (multipart: path, file)"),
        Route(method: "put", path: "/sandboxes/{id}/files/upload", summary: "Upload a raw body (signed URL)", query: ["path"]),
        Route(
            method: "post", path: "/sandboxes/{id}/files/batch", summary: "Write several text files",
            body: [
                "type": "array",
                "items": ["type": "object", "required": ["path"], "properties": ["path": ["type": "string"], "content": ["type": "string"]]],
            ]),
        Route(
            method: "get", path: "/sandboxes/{id}/files/list",
            summary: "List a directory: [{name, path, is_dir, size, type (file, dir, symlink, other), mode, modified_at, owner}]",
            query: ["path", "depth", "user"]),
        Route(method: "get", path: "/sandboxes/{id}/files/exists", summary: "Whether a path exists", query: ["path", "user"]),
        Route(method: "get", path: "/sandboxes/{id}/files/info", summary: "Describe a path", query: ["path", "user"]),
        Route(
            method: "post", path: "/sandboxes/{id}/files/rename", summary: "Move a path",
            body: [
                "type": "object", "required": ["oldPath", "newPath"],
                "properties": ["oldPath": ["type": "string"], "newPath": ["type": "string"], "user": ["type": "string"]],
            ]),
        Route(method: "post", path: "/sandboxes/{id}/files/mkdir", summary: "Make a directory (with parents)", body: pathBody),
        Route(method: "get", path: "/sandboxes/{id}/files/watch", summary: "Directory events as server-sent events", query: ["path", "recursive", "user"]),
        Route(method: "post", path: "/sandboxes/{id}/files/download-url", summary: "A signed download URL", body: pathBody),
        Route(method: "post", path: "/sandboxes/{id}/files/upload-url", summary: "A signed upload URL", body: pathBody),
        Route(
            method: "post", path: "/sandboxes/{id}/pty", summary: "Start a terminal",
            body: ["type": "object", "properties": ["cols": ["type": "integer"], "rows": ["type": "integer"]]]),
        Route(method: "get", path: "/sandboxes/{id}/pty", summary: "List terminals"),
        Route(
            method: "post", path: "/sandboxes/{id}/pty/{pid}/input", summary: "Type into a terminal",
            body: ["type": "object", "required": ["data"], "properties": ["data": ["type": "string"]]]),
        Route(
            method: "post", path: "/sandboxes/{id}/pty/{pid}/resize", summary: "Resize a terminal",
            body: ["type": "object", "properties": ["cols": ["type": "integer"], "rows": ["type": "integer"]]]),
        Route(method: "get", path: "/sandboxes/{id}/pty/{pid}/read", summary: "Output since the last read"),
        Route(method: "delete", path: "/sandboxes/{id}/pty/{pid}", summary: "Kill a terminal"),
    ] + desktopRoutes + SandboxController.notYet.map { method, path, feature in
        Route(
            method: method.rawValue.lowercased(),
            path: path.replacingOccurrences(of: ":id", with: "{id}").replacingOccurrences(of: ":ctx", with: "{ctx}")
                .replacingOccurrences(of: ":exp", with: "{exp}"),
            summary: "\(feature) (501 until available)")
    } + accountRoutes + networkingRoutes + productionRoutes

    /// Desktop sandboxes (wire protocol §13).
    nonisolated(unsafe) static let desktopRoutes: [Route] = [
        Route(
            method: "get", path: "/sandboxes/{id}/desktop/screenshot",
            summary: "A PNG of the whole screen; scale (0-1] or maxWidth/maxHeight shrink it (X-OmniRun-Scale-Factor tells by how much)",
            query: ["scale", "maxWidth", "maxHeight"]),
        Route(method: "get", path: "/sandboxes/{id}/desktop/screen", summary: "Screen size and cursor position"),
        Route(method: "get", path: "/sandboxes/{id}/desktop/stream", summary: "noVNC port, VNC port and websocket path"),
        Route(
            method: "post", path: "/sandboxes/{id}/desktop/mouse", summary: "A mouse action",
            body: [
                "type": "object", "required": ["action"],
                "properties": [
                    "action": ["type": "string", "enum": DesktopMouseRequest.Action.allCases.map(\.rawValue)],
                    // Numbers; fractions are rounded to the nearest pixel.
                    "x": ["type": "number", "minimum": 0], "y": ["type": "number", "minimum": 0],
                    "endX": ["type": "number", "minimum": 0], "endY": ["type": "number", "minimum": 0],
                    "direction": ["type": "string", "enum": DesktopMouseRequest.Direction.allCases.map(\.rawValue)],
                    "amount": ["type": "number", "minimum": 1, "maximum": 100],
                ],
            ]),
        Route(
            method: "post", path: "/sandboxes/{id}/desktop/keyboard", summary: "Type a text or press a key (\"Enter\", \"ctrl+c\")",
            body: [
                "type": "object", "required": ["action"],
                "properties": [
                    "action": ["type": "string", "enum": DesktopKeyboardRequest.Action.allCases.map(\.rawValue)],
                    "text": ["type": "string"], "key": ["type": "string"],
                ],
            ]),
    ]

    static let json: [UInt8] = {
        var paths: [String: [String: Any]] = [:]
        for route in routes {
            var parameters: [[String: Any]] = []
            for name in ["id", "pid", "ctx", "exp", "tokenID", "key", "name", "build", "webhook"] where route.path.contains("{\(name)}") {
                parameters.append(["name": name, "in": "path", "required": true, "schema": ["type": "string"]])
            }
            for name in route.query {
                parameters.append([
                    "name": name, "in": "query", "required": name == "path" && !route.path.hasSuffix("/list"),
                    "schema": route.querySchemas[name] ?? ["type": "string"],
                ])
            }
            var operation: [String: Any] = [
                "summary": route.summary, "operationId": "\(route.method)_\(route.path)",
                "responses": [
                    "200": ["description": "Success"], "201": ["description": "Created"], "204": ["description": "No content"],
                    "default": [
                        "description": "Error",
                        "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]],
                    ],
                ],
            ]
            if !parameters.isEmpty { operation["parameters"] = parameters }
            if let body = route.body {
                operation["requestBody"] = ["required": true, "content": ["application/json": ["schema": body]]]
            }
            if route.open { operation["security"] = [] }
            paths[route.path, default: [:]][route.method] = operation
        }
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": [
                "title": "OmniRun", "version": OmniRunVersion.current,
                "description": "Isolated microVM sandboxes for AI agents. The wire protocol of the public OmniRun SDK.",
            ],
            "paths": paths,
            "components": [
                "securitySchemes": [
                    "apiKey": ["type": "apiKey", "in": "header", "name": "X-API-Key"],
                    "bearer": ["type": "http", "scheme": "bearer"],
                ],
                "schemas": [
                    "Error": [
                        "type": "object", "required": ["error", "message"],
                        "properties": ["error": ["type": "string"], "message": ["type": "string"]],
                    ]
                ],
            ],
            "security": [["apiKey": []], ["bearer": []]],
        ]
        let data = try! JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])
        return [UInt8](data)
    }()
}
