extension OpenAPIDocument {
    nonisolated(unsafe) static let executeBody: [String: Any] = [
        "type": "object", "required": ["code"],
        "properties": ["code": ["type": "string"], "timeout": ["type": "integer", "minimum": 1, "maximum": 3600]],
    ]

    /// Code contexts (wire protocol §8) and fork.
    nonisolated(unsafe) static let productionRoutes: [Route] = [
        Route(
            method: "post", path: "/sandboxes/{id}/contexts", summary: "Start a stateful interpreter (language: python)",
            body: ["type": "object", "properties": ["language": ["type": "string"], "cwd": ["type": "string"]]]),
        Route(method: "get", path: "/sandboxes/{id}/contexts", summary: "The sandbox's contexts"),
        Route(
            method: "post", path: "/sandboxes/{id}/contexts/{ctx}/execute",
            summary: "Run code in a context: results (MIME bundles), logs, error, execution_count", body: executeBody),
        Route(
            method: "post", path: "/sandboxes/{id}/contexts/{ctx}/stream-execute",
            summary: "Run code in a context, its output as server-sent events ending with done", body: executeBody),
        Route(method: "post", path: "/sandboxes/{id}/contexts/{ctx}/restart", summary: "A fresh interpreter for the context"),
        Route(method: "delete", path: "/sandboxes/{id}/contexts/{ctx}", summary: "Stop and remove a context"),
        Route(
            method: "post", path: "/sandboxes/{id}/fork",
            summary: "Copies of a running sandbox from its memory and disk now: 201 {sandboxes: [sandbox info]}",
            body: ["type": "object", "properties": ["count": ["type": "integer", "minimum": 1, "maximum": 10]]]),
    ]
}
