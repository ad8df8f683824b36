"""The SDK's errors. Every failure the SDK raises is a `SandboxError`."""
from __future__ import annotations

import builtins
import json
from typing import Optional


class SandboxError(Exception):
    """An API call failed. `status` is the HTTP status (None for network failures);
    `code` is the server's error code (`{"error": "<code>"}`) when it sent one."""

    def __init__(self, message: str, status: Optional[int] = None, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class SandboxNotFoundError(SandboxError):
    """The sandbox does not exist (or was killed)."""

    def __init__(self, sandbox_id: str) -> None:
        super().__init__(f"Sandbox {sandbox_id} not found", 404, "not_found")
        self.sandbox_id = sandbox_id


class CommandExitException(SandboxError):
    """A command ended with a non-zero exit code."""

    def __init__(self, stdout: str, stderr: str, exit_code: int) -> None:
        super().__init__(f"Command exited with code {exit_code}: {stderr or stdout}")
        self.stdout = stdout
        self.stderr = stderr
        self.exit_code = exit_code


class StreamError(SandboxError):
    """A server-sent event stream could not be opened."""


class TimeoutError(SandboxError, builtins.TimeoutError):  # noqa: A001 - same name as the TypeScript SDK
    """A wait or a request took longer than allowed."""


SandboxTimeoutError = TimeoutError


class RateLimitError(SandboxError):
    """429: a limit was reached (e.g. concurrent sandboxes, LLM requests per minute).
    `retry_after` is the server's Retry-After in seconds, when given."""

    def __init__(self, message: str, code: Optional[str] = None, retry_after: Optional[float] = None) -> None:
        super().__init__(message, 429, code)
        self.retry_after = retry_after


class NotAvailableError(SandboxError):
    """501: the server does not offer this feature (yet)."""


def error_message(text: str) -> tuple[str, Optional[str]]:
    """The human message and the error code of an error body, worked out as the
    TypeScript SDK does: empty -> "request failed"; JSON string -> it; JSON object ->
    `message`, else `error`, else the raw text; anything else -> the raw text."""
    if not text:
        return "request failed", None
    try:
        body = json.loads(text)
    except ValueError:
        return text, None
    if isinstance(body, str):
        return body, None
    if isinstance(body, dict):
        code = body.get("error") if isinstance(body.get("error"), str) else None
        if isinstance(body.get("message"), str):
            return body["message"], code
        if code is not None:
            return code, code
    return text, None


def api_error(status: int, text: str, retry_after: Optional[str] = None, prefix: str = "API error") -> SandboxError:
    """The typed error for a non-2xx response."""
    message, code = error_message(text)
    full = f"{prefix} {status}: {message}"
    if status == 429:
        seconds: Optional[float] = None
        if retry_after:
            try:
                seconds = float(retry_after)
            except ValueError:
                seconds = None
        return RateLimitError(full, code, seconds)
    if status == 501:
        return NotAvailableError(full, status, code)
    if prefix == "Stream error":
        err: SandboxError = StreamError(full, status, code)
        return err
    return SandboxError(full, status, code)
