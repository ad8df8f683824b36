import Foundation

/// The routes of exposures and network policy in the OpenAPI document.
extension OpenAPIDocument {
    /// An egress policy (wire protocol §9.3): IPv4 addresses or CIDRs, host names.
    nonisolated(unsafe) static let networkPolicy: [String: Any] = [
        "type": "object",
        "properties": [
            "allowDomains": ["type": "array", "items": ["type": "string"], "maxItems": 256],
            "denyDomains": ["type": "array", "items": ["type": "string"], "maxItems": 256],
            "allowIPs": ["type": "array", "items": ["type": "string"], "maxItems": 256],
            "denyIPs": ["type": "array", "items": ["type": "string"], "maxItems": 256],
        ],
    ]

    nonisolated(unsafe) static let networkingRoutes: [Route] = [
        Route(
            method: "post", path: "/sandboxes/{id}/network-policy",
            summary: "Replace a running sandbox's egress policy (sandboxes with internet access; new connections follow it at once)",
            body: networkPolicy),
        Route(
            method: "post", path: "/sandboxes/{id}/exposures", summary: "Expose a port of the sandbox at a preview URL",
            body: [
                "type": "object", "required": ["port"],
                "properties": [
                    "port": ["type": "integer", "minimum": 1, "maximum": 65535],
                    "visibility": ["type": "string", "enum": ["public", "private"]],
                    "requestedTtlSeconds": ["type": "integer", "minimum": 1],
                    "slug": ["type": "string"], "openPath": ["type": "string"], "preserveHost": ["type": "boolean"],
                ],
            ]),
        Route(method: "get", path: "/sandboxes/{id}/exposures", summary: "The sandbox's exposures (expired and revoked included)"),
        Route(method: "get", path: "/sandboxes/{id}/exposures/{exp}", summary: "One exposure"),
        Route(method: "delete", path: "/sandboxes/{id}/exposures/{exp}", summary: "Revoke an exposure"),
        Route(
            method: "post", path: "/sandboxes/{id}/exposures/{exp}/refresh", summary: "Give an exposure a new expiry",
            body: ["type": "object", "properties": ["requestedTtlSeconds": ["type": "integer", "minimum": 1]]]),
    ]
}
