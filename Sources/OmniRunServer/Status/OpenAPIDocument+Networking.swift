import Foundation

/// The routes of exposures (and, later, network policy) in the OpenAPI document.
extension OpenAPIDocument {
    nonisolated(unsafe) static let networkingRoutes: [Route] = [
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
