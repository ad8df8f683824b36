"""HTTP transport over httpx: a blocking and an async client that execute the
operations of `_ops`. Auth is `X-API-Key`; a 502/503/504 answer to an idempotent call
(GET, DELETE) is retried once; SSE streams and downloads are never retried."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator, Dict, Iterator, Optional

import httpx

from ._config import ConnectionConfig
from ._ops import NO_BODY, Call, Op, Sleep, Stream
from .errors import SandboxError, TimeoutError, api_error

RETRIED = (502, 503, 504)
USER_AGENT = "omnirun-python/0.6.0"


def _url(config: ConnectionConfig, path: str) -> str:
    return config.api_url.rstrip("/") + path


def _target(config: ConnectionConfig, path: str, params: Optional[Dict[str, str]] = None) -> httpx.URL:
    """The full URL, query included, exactly as it goes on the wire (e2ee binds to it)."""
    return httpx.URL(_url(config, path), params=params or None)


def _route(method: str, url: httpx.URL) -> str:
    """What an e2ee envelope's `aad` names: the method and the request target."""
    return f"{method} {url.raw_path.decode('ascii')}"


def _headers(config: ConnectionConfig, accept: Optional[str] = None) -> Dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if config.api_key:
        headers["X-API-Key"] = config.api_key
    if accept:
        headers["Accept"] = accept
    return headers


def _request_args(config: ConnectionConfig, op: Any, accept: Optional[str] = None, key: Optional[bytes] = None,
                  route: Optional[str] = None) -> Dict[str, Any]:
    """Headers and body; the URL (with the query) comes from `_target`."""
    args: Dict[str, Any] = {"headers": _headers(config, accept)}
    if key is not None:
        # Holding the key: GET answers come back sealed too (the server cannot tell otherwise).
        args["headers"]["X-OmniRun-E2EE"] = "seal"
    if op.json is not NO_BODY:
        body = op.json
        if key is not None and isinstance(op, Call) and op.method == "POST" and body is not None:
            from .e2ee import encrypt_json
            body = {"_encrypted": encrypt_json(key, body, route)}
        args["content"] = json.dumps(body).encode()
        args["headers"]["Content-Type"] = "application/json"
    elif isinstance(op, Call) and op.files is not None:
        args["files"] = op.files
        args["data"] = op.data
    elif op.method == "POST":
        args["headers"]["Content-Type"] = "application/json"
    return args


def _parse(op: Call, response: httpx.Response, key: Optional[bytes] = None, route: Optional[str] = None) -> Any:
    if op.kind == "bytes":
        return response.content
    if op.kind == "ignore" or response.status_code == 204:
        return (None, response.headers) if op.kind == "headers" else None
    text = response.text
    data: Any = text
    if "application/json" in response.headers.get("content-type", ""):
        data = json.loads(text) if text else None
        if key is not None and isinstance(data, dict) and isinstance(data.get("_encrypted"), dict):
            from .e2ee import decrypt_json
            data = decrypt_json(key, data["_encrypted"], f"response {route}" if route else None)
    return (data, response.headers) if op.kind == "headers" else data


def _check(op: Call, response: httpx.Response) -> None:
    if response.is_success:
        return
    text = response.text
    if op.kind == "bytes":
        raise SandboxError(f"Download error {response.status_code}: {text}", response.status_code)
    raise api_error(response.status_code, text, response.headers.get("retry-after"))


def sse_payloads(lines: Iterator[str]) -> Iterator[Any]:
    for line in lines:
        if not line.startswith("data: "):
            continue
        try:
            yield json.loads(line[6:])
        except ValueError:
            continue  # e.g. "[DONE]"


def _transport_error(exc: httpx.HTTPError) -> SandboxError:
    if isinstance(exc, httpx.TimeoutException):
        return TimeoutError(f"request timed out: {exc}")
    return SandboxError(f"request failed: {exc}")


class HTTPClient:
    """Blocking client."""

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config
        self.e2ee_key: Optional[bytes] = None  # set once an e2ee sandbox's server key is known
        self._http = httpx.Client(timeout=config.request_timeout)

    def execute(self, op: Op) -> Any:
        if isinstance(op, Sleep):
            time.sleep(op.seconds)
            return None
        if isinstance(op, Stream):
            for payload in self.iter_sse(op.method, op.path, op.params, op.json):
                if op.on_event(payload):
                    break
            return None
        return self.call(op)

    def call(self, op: Call) -> Any:
        attempts = 2 if op.idempotent else 1
        for attempt in range(attempts):
            try:
                url = _target(self.config, op.path, op.params)
                route = _route(op.method, url)
                response = self._http.request(op.method, url, **_request_args(self.config, op, key=self.e2ee_key, route=route))
            except httpx.HTTPError as exc:
                raise _transport_error(exc) from exc
            if response.status_code in RETRIED and attempt + 1 < attempts:
                continue
            _check(op, response)
            return _parse(op, response, self.e2ee_key, route)
        raise AssertionError("unreachable")

    def iter_sse(self, method: str, path: str, params: Optional[Dict[str, str]] = None, body: Any = NO_BODY) -> Iterator[Any]:
        op = Stream(method, path, lambda _: False, params, body)
        timeout = httpx.Timeout(self.config.request_timeout, read=None)
        try:
            with self._http.stream(method, _target(self.config, path, params), timeout=timeout,
                                   **_request_args(self.config, op, "text/event-stream")) as response:
                if not response.is_success:
                    response.read()
                    raise api_error(response.status_code, response.text, response.headers.get("retry-after"), "Stream error")
                yield from sse_payloads(response.iter_lines())
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc

    def open_sse(self, path: str, params: Optional[Dict[str, str]] = None) -> httpx.Response:
        """An open GET event stream; the caller reads `sse_payloads(response)` and closes it
        (from any thread)."""
        timeout = httpx.Timeout(self.config.request_timeout, read=None)
        try:
            request = self._http.build_request("GET", _url(self.config, path), params=params,
                                               headers=_headers(self.config, "text/event-stream"), timeout=timeout)
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        if not response.is_success:
            response.read()
            response.close()
            raise api_error(response.status_code, response.text, response.headers.get("retry-after"), "Stream error")
        return response

    def iter_bytes(self, path: str, params: Optional[Dict[str, str]] = None) -> Iterator[bytes]:
        timeout = httpx.Timeout(self.config.request_timeout, read=None)
        try:
            with self._http.stream("GET", _url(self.config, path), params=params, timeout=timeout,
                                   headers=_headers(self.config)) as response:
                if not response.is_success:
                    response.read()
                    raise SandboxError(f"Download error {response.status_code}: {response.text}", response.status_code)
                yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc

    def close(self) -> None:
        self._http.close()


class AsyncHTTPClient:
    """asyncio client."""

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config
        self.e2ee_key: Optional[bytes] = None  # set once an e2ee sandbox's server key is known
        self._http = httpx.AsyncClient(timeout=config.request_timeout)

    async def execute(self, op: Op) -> Any:
        if isinstance(op, Sleep):
            await asyncio.sleep(op.seconds)
            return None
        if isinstance(op, Stream):
            async for payload in self.iter_sse(op.method, op.path, op.params, op.json):
                if op.on_event(payload):
                    break
            return None
        return await self.call(op)

    async def call(self, op: Call) -> Any:
        attempts = 2 if op.idempotent else 1
        for attempt in range(attempts):
            try:
                url = _target(self.config, op.path, op.params)
                route = _route(op.method, url)
                response = await self._http.request(op.method, url, **_request_args(self.config, op, key=self.e2ee_key, route=route))
            except httpx.HTTPError as exc:
                raise _transport_error(exc) from exc
            if response.status_code in RETRIED and attempt + 1 < attempts:
                continue
            _check(op, response)
            return _parse(op, response, self.e2ee_key, route)
        raise AssertionError("unreachable")

    async def iter_sse(self, method: str, path: str, params: Optional[Dict[str, str]] = None, body: Any = NO_BODY) -> AsyncIterator[Any]:
        op = Stream(method, path, lambda _: False, params, body)
        timeout = httpx.Timeout(self.config.request_timeout, read=None)
        try:
            async with self._http.stream(method, _target(self.config, path, params), timeout=timeout,
                                         **_request_args(self.config, op, "text/event-stream")) as response:
                if not response.is_success:
                    await response.aread()
                    raise api_error(response.status_code, response.text, response.headers.get("retry-after"), "Stream error")
                async for line in response.aiter_lines():
                    for payload in sse_payloads(iter((line,))):
                        yield payload
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc

    async def iter_bytes(self, path: str, params: Optional[Dict[str, str]] = None) -> AsyncIterator[bytes]:
        timeout = httpx.Timeout(self.config.request_timeout, read=None)
        try:
            async with self._http.stream("GET", _url(self.config, path), params=params, timeout=timeout,
                                         headers=_headers(self.config)) as response:
                if not response.is_success:
                    await response.aread()
                    raise SandboxError(f"Download error {response.status_code}: {response.text}", response.status_code)
                async for chunk in response.aiter_bytes():
                    yield chunk
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc

    async def aclose(self) -> None:
        await self._http.aclose()
