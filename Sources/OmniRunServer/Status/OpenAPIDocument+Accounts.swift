import Foundation
import OmniRunControl

/// The routes of accounts, the vault and the LLM proxy in the OpenAPI document.
extension OpenAPIDocument {
    nonisolated(unsafe) static let emailBody: [String: Any] = [
        "type": "object", "required": ["email"], "properties": ["email": ["type": "string", "format": "email"]],
    ]

    nonisolated(unsafe) static let accountRoutes: [Route] = [
        Route(method: "post", path: "/auth/magic-link/request", summary: "Email a sign-in link and code", body: emailBody, open: true),
        Route(
            method: "post", path: "/auth/otp/verify", summary: "Sign in with the emailed code",
            body: [
                "type": "object", "required": ["email", "code"],
                "properties": ["email": ["type": "string"], "code": ["type": "string", "pattern": "^[0-9]{6}$"]],
            ], open: true),
        Route(method: "get", path: "/auth/magic-link/verify", summary: "The emailed link's page", query: ["token"], open: true),
        Route(
            method: "post", path: "/auth/magic-link/verify", summary: "Sign in with the emailed link's token",
            body: ["type": "object", "required": ["token"], "properties": ["token": ["type": "string"]]], open: true),
        Route(
            method: "post", path: "/auth/mfa/totp/verify", summary: "Multi-factor sign-in (501 until available)",
            body: ["type": "object", "properties": ["mfa_challenge_token": ["type": "string"], "code": ["type": "string"]]],
            open: true),
        Route(method: "get", path: "/auth/me", summary: "The caller's account, limits and spend"),
        Route(
            method: "post", path: "/auth/tokens", summary: "Create an API token (shown once)",
            body: [
                "type": "object",
                "properties": [
                    "name": ["type": "string", "minLength": 1, "maxLength": 100],
                    "expiresIn": ["type": "integer", "minimum": 1, "maximum": 315_360_000],
                    "expiresAt": ["type": "string", "format": "date-time"],
                ],
            ]),
        Route(method: "get", path: "/auth/tokens", summary: "The caller's API tokens (never their values)"),
        Route(method: "delete", path: "/auth/tokens/{tokenID}", summary: "Revoke an API token"),
        Route(
            method: "post", path: "/vault/init",
            summary: "Create the caller's vault (idempotent): {initialized, createdAt, credentials, vault_sandbox_id: null}"),
        Route(
            method: "post", path: "/vault/credentials",
            summary:
                "Store or replace a credential ({key, value}), or up to 64 at once ({credentials: {NAME: value}}, answered with {keys, created, updated})",
            body: [
                "oneOf": [
                    [
                        "type": "object", "required": ["key", "value"],
                        "properties": [
                            "key": ["type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"],
                            "value": ["type": "string", "maxLength": 65536],
                        ],
                    ],
                    [
                        "type": "object", "required": ["credentials"],
                        "properties": [
                            "credentials": [
                                "type": "object", "minProperties": 1, "maxProperties": 64,
                                "propertyNames": ["pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"],
                                "additionalProperties": ["type": "string", "maxLength": 65536],
                            ]
                        ],
                    ],
                ]
            ]),
        Route(method: "get", path: "/vault/credentials", summary: "{keys: [names], credentials: [{key, createdAt, updatedAt}]} (never values)"),
        Route(method: "delete", path: "/vault/credentials/{key}", summary: "Remove a credential"),
        Route(
            method: "post", path: "/llm/v1/chat/completions", summary: "OpenAI-compatible chat completion (SSE with stream: true)",
            body: [
                "type": "object", "required": ["model", "messages"],
                "properties": [
                    "model": ["type": "string"],
                    "messages": [
                        "type": "array", "minItems": 1,
                        "items": [
                            "type": "object", "required": ["role", "content"],
                            "properties": ["role": ["type": "string"], "content": ["type": "string"]],
                        ],
                    ],
                    "stream": ["type": "boolean"], "max_tokens": ["type": "integer", "minimum": 1],
                    "temperature": ["type": "number"],
                ],
            ]),
        Route(
            method: "post", path: "/llm/v1/messages",
            summary: "Anthropic Messages (SSE with stream: true); x-api-key or Bearer, anthropic-version/anthropic-beta passed on",
            body: [
                "type": "object", "required": ["model", "messages", "max_tokens"],
                "properties": [
                    "model": ["type": "string"], "max_tokens": ["type": "integer", "minimum": 1], "stream": ["type": "boolean"],
                    "messages": [
                        "type": "array", "minItems": 1,
                        "items": ["type": "object", "required": ["role", "content"], "properties": ["role": ["type": "string"]]],
                    ],
                ],
            ]),
        Route(
            method: "post", path: "/llm/v1/messages/count_tokens", summary: "Anthropic token count of a Messages request (not charged)",
            body: [
                "type": "object", "required": ["model", "messages"],
                "properties": [
                    "model": ["type": "string"],
                    "messages": [
                        "type": "array", "minItems": 1,
                        "items": ["type": "object", "required": ["role", "content"], "properties": ["role": ["type": "string"]]],
                    ],
                ],
            ]),
        Route(
            method: "post", path: "/llm/v1/responses", summary: "OpenAI Responses (SSE with stream: true; usage at response.completed)",
            body: [
                "type": "object", "required": ["model", "input"],
                "properties": [
                    "model": ["type": "string"], "stream": ["type": "boolean"], "max_output_tokens": ["type": "integer", "minimum": 1],
                    "input": ["oneOf": [["type": "string"], ["type": "array", "items": ["type": "object"]]]],
                ],
            ]),
        Route(method: "get", path: "/llm/v1/models", summary: "Models the proxy serves"),
        Route(
            method: "get", path: "/llm/v1/usage",
            summary: "LLM spend and cap, in cents (spendUsedCents, spendCapCents, remainingCents, and the same in snake_case)"),
        Route(
            method: "get", path: "/llm/v1/usage/daily",
            summary:
                "The caller's LLM usage of the last `days` UTC days (1 to 90, default 30) by day and model: {days, from, to, models, totalCents, items: [{date, model, requests, promptTokens, completionTokens, costCents}]}",
            query: ["days"],
            querySchemas: ["days": ["type": "integer", "minimum": 1, "maximum": SpendLedger.maxHistoryDays, "default": SpendLedger.defaultHistoryDays]]),
    ]
}
