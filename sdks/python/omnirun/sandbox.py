"""`Sandbox` (blocking) and `AsyncSandbox` (asyncio): lifecycle and the namespaces."""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, List, Optional, Tuple

from ._base import compact
from ._config import ConnectionConfig, preview_domain, resolve_config
from ._http import AsyncHTTPClient, HTTPClient
from ._ops import Call, Ops, adrive, drive
from .commands import AsyncCommands, Commands
from .contexts import AsyncContexts, Contexts
from .desktop import AsyncDesktop, Desktop
from .errors import SandboxError, SandboxNotFoundError
from .exposures import AsyncExposures, Exposures
from .files import AsyncFilesystem, Filesystem
from .models import (CodeResult, ExposureInfo, MetricsSnapshot, NetworkPolicy, SandboxInfo, command_result,
                     metrics_snapshot, sandbox_info)
from .production import AsyncProduction, AsyncWebhooks, Production, Webhooks
from .pty import AsyncPty, Pty


def _metadata_filter(metadata: Optional[Dict[str, str]]) -> Optional[str]:
    return ",".join(f"{k}:{v}" for k, v in metadata.items()) if metadata else None


def _list_params(limit: Optional[int], next_token: Optional[str], state: Optional[str],
                 metadata: Optional[Dict[str, str]]) -> Dict[str, str]:
    return compact(limit=str(limit) if limit is not None else None, next_token=next_token or None, state=state,
                   metadata=_metadata_filter(metadata))


class _SandboxOps:
    """The lifecycle calls, written once for both clients."""

    @staticmethod
    def create(template: str, timeout: int, options: Dict[str, Any], e2ee: bool) -> Ops[Tuple[Dict[str, Any], Any]]:
        body: Dict[str, Any] = {"template": template, "timeout": timeout}
        keys = None
        if e2ee:
            from .e2ee import generate_key_pair
            keys = generate_key_pair()
            body["e2ee"] = True
            body["clientPublicKey"] = keys.public_key_base64
        for flag in ("internet", "autoPause", "secure", "vaultInject"):
            if options.get(flag):
                body[flag] = True
        body.update(compact(memoryMB=options.get("memoryMB"), envVars=options.get("envVars"),
                            metadata=options.get("metadata"), network=options.get("network"),
                            maskRequestHost=options.get("maskRequestHost") or None))
        data = yield Call("POST", "/sandboxes", json=body)
        if not isinstance(data, dict) or not data.get("sandboxID"):
            raise SandboxError(f"unexpected answer to POST /sandboxes: {data!r}")
        return data, keys

    @staticmethod
    def info(sandbox_id: str) -> Ops[Dict[str, Any]]:
        try:
            data = yield Call("GET", f"/sandboxes/{sandbox_id}")
        except SandboxError as exc:
            if exc.status == 404:
                raise SandboxNotFoundError(sandbox_id) from exc
            raise
        return data if isinstance(data, dict) else {}

    @staticmethod
    def is_running(sandbox_id: str) -> Ops[bool]:
        try:
            data = yield Call("GET", f"/sandboxes/{sandbox_id}")
        except SandboxError:
            return False
        return isinstance(data, dict) and data.get("state") == "running"

    @staticmethod
    def list(params: Dict[str, str]) -> Ops[Tuple[List[SandboxInfo], Optional[str]]]:
        data, headers = yield Call("GET", "/sandboxes", params=params or None, kind="headers")
        items = [sandbox_info(s) for s in data] if isinstance(data, list) else []
        return items, (headers.get("x-next-token") or None)

    @staticmethod
    def simple(method: str, path: str, body: Any = None) -> Ops[Any]:
        if body is None:
            return (yield Call(method, path, kind="ignore" if method == "DELETE" else "json"))
        return (yield Call(method, path, json=body))

    @staticmethod
    def signed_url(sandbox_id: str, kind: str, path: str, api_url: str) -> Ops[str]:
        data = yield Call("POST", f"/sandboxes/{sandbox_id}/files/{kind}-url", json={"path": path})
        url = str((data or {}).get("url") or "") if isinstance(data, dict) else ""
        if url and not url.startswith("http"):
            url = api_url.rstrip("/") + url
        return url

    @staticmethod
    def metrics(sandbox_id: str) -> Ops[List[MetricsSnapshot]]:
        data = yield Call("GET", f"/sandboxes/{sandbox_id}/metrics")
        return [metrics_snapshot(m) for m in data] if isinstance(data, list) else []


def _create_options(internet: bool, memory: Optional[int], env_vars: Optional[Dict[str, str]],
                    metadata: Optional[Dict[str, str]], auto_pause: bool, network: Optional[NetworkPolicy], secure: bool,
                    mask_request_host: Optional[str], vault_inject: bool) -> Dict[str, Any]:
    return {"internet": internet, "memoryMB": memory, "envVars": env_vars, "metadata": metadata, "autoPause": auto_pause,
            "network": network, "secure": secure, "maskRequestHost": mask_request_host, "vaultInject": vault_inject}


class SandboxPaginator:
    """Pages of `Sandbox.list` by the server's `x-next-token` cursor."""

    def __init__(self, config: ConnectionConfig, limit: int, state: Optional[str], metadata: Optional[Dict[str, str]]) -> None:
        self._client = HTTPClient(config)
        self._limit, self._state, self._metadata = limit, state, metadata
        self._next: Optional[str] = None
        self.has_next = True

    def next_items(self) -> List[SandboxInfo]:
        if not self.has_next:
            return []
        items, self._next = drive(_SandboxOps.list(_list_params(self._limit, self._next, self._state, self._metadata)),
                                  self._client.execute)
        self.has_next = self._next is not None
        return items


class AsyncSandboxPaginator:
    def __init__(self, config: ConnectionConfig, limit: int, state: Optional[str], metadata: Optional[Dict[str, str]]) -> None:
        self._client = AsyncHTTPClient(config)
        self._limit, self._state, self._metadata = limit, state, metadata
        self._next: Optional[str] = None
        self.has_next = True

    async def next_items(self) -> List[SandboxInfo]:
        if not self.has_next:
            return []
        items, self._next = await adrive(
            _SandboxOps.list(_list_params(self._limit, self._next, self._state, self._metadata)), self._client.execute)
        self.has_next = self._next is not None
        return items


class Sandbox:
    """A sandbox, through the blocking client. `with Sandbox.create(...) as sandbox:` kills it at the end."""

    def __init__(self, sandbox_id: str, client: HTTPClient, preview: Optional[str] = None) -> None:
        self.sandbox_id = sandbox_id
        self._client = client
        self._preview_domain = preview_domain(preview)
        self.traffic_access_token = ""
        self.server_public_key: Optional[str] = None
        self.commands = Commands(sandbox_id, client)
        self.files = Filesystem(sandbox_id, client)
        self.pty = Pty(sandbox_id, client)
        self.contexts = Contexts(sandbox_id, client)
        self.desktop = Desktop(sandbox_id, client)
        self.exposures = Exposures(sandbox_id, client)
        self.production = Production(sandbox_id, client)
        self.webhooks = Webhooks(client)
        self._keep_alive: Optional[threading.Event] = None

    @classmethod
    def create(cls, template: str = "python-3.11", *, timeout: int = 300, api_key: Optional[str] = None,
               api_url: Optional[str] = None, request_timeout: Optional[float] = None, internet: bool = False,
               memory: Optional[int] = None, env_vars: Optional[Dict[str, str]] = None,
               metadata: Optional[Dict[str, str]] = None, keep_alive: Optional[float] = None, auto_pause: bool = False,
               network: Optional[NetworkPolicy] = None, secure: bool = False, mask_request_host: Optional[str] = None,
               vault_inject: bool = False, e2ee: bool = False, preview_domain: Optional[str] = None) -> "Sandbox":
        """Creates a sandbox from `template`. `timeout` in seconds (0 = permanent);
        `keep_alive` (seconds) resets the timeout on that interval until `kill()`."""
        client = HTTPClient(resolve_config(api_url, api_key, request_timeout))
        options = _create_options(internet, memory, env_vars, metadata, auto_pause, network, secure, mask_request_host,
                                  vault_inject)
        data, keys = drive(_SandboxOps.create(template, timeout, options, e2ee), client.execute)
        sandbox = cls(data["sandboxID"], client, preview_domain)
        sandbox.traffic_access_token = data.get("trafficToken") or ""
        sandbox.server_public_key = data.get("serverPublicKey") or (data.get("e2ee") or {}).get("serverPublicKey")
        if keys is not None and sandbox.server_public_key:
            from .e2ee import derive_shared_key
            client.e2ee_key = derive_shared_key(keys.private_key, sandbox.server_public_key)
        if keep_alive:
            sandbox._start_keep_alive(keep_alive, timeout)
        return sandbox

    @classmethod
    def connect(cls, sandbox_id: str, *, api_key: Optional[str] = None, api_url: Optional[str] = None,
                request_timeout: Optional[float] = None, preview_domain: Optional[str] = None) -> "Sandbox":
        """Attaches to a running sandbox; `SandboxNotFoundError` if there is none."""
        client = HTTPClient(resolve_config(api_url, api_key, request_timeout))
        drive(_SandboxOps.info(sandbox_id), client.execute)
        return cls(sandbox_id, client, preview_domain)

    @staticmethod
    def list(*, api_key: Optional[str] = None, api_url: Optional[str] = None, limit: Optional[int] = None,
             next_token: Optional[str] = None, state: Optional[str] = None,
             metadata: Optional[Dict[str, str]] = None) -> List[SandboxInfo]:
        client = HTTPClient(resolve_config(api_url, api_key))
        try:
            items, _ = drive(_SandboxOps.list(_list_params(limit, next_token, state, metadata)), client.execute)
        finally:
            client.close()
        return items

    @staticmethod
    def paginate(*, api_key: Optional[str] = None, api_url: Optional[str] = None, limit: int = 50,
                 state: Optional[str] = None, metadata: Optional[Dict[str, str]] = None) -> SandboxPaginator:
        return SandboxPaginator(resolve_config(api_url, api_key), limit, state, metadata)

    def _start_keep_alive(self, interval: float, timeout: int) -> None:
        stop = threading.Event()
        self._keep_alive = stop

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    self.set_timeout(timeout)
                except SandboxError:
                    pass  # a missed heartbeat is retried at the next interval

        threading.Thread(target=beat, name="omnirun-keep-alive", daemon=True).start()

    def kill(self) -> None:
        """Destroys the sandbox (permanent)."""
        if self._keep_alive:
            self._keep_alive.set()
            self._keep_alive = None
        drive(_SandboxOps.simple("DELETE", f"/sandboxes/{self.sandbox_id}"), self._client.execute)

    def set_timeout(self, timeout: int) -> None:
        drive(_SandboxOps.simple("POST", f"/sandboxes/{self.sandbox_id}/timeout", {"timeout": timeout}), self._client.execute)

    def is_running(self) -> bool:
        return drive(_SandboxOps.is_running(self.sandbox_id), self._client.execute)

    def get_info(self) -> SandboxInfo:
        return sandbox_info(drive(_SandboxOps.info(self.sandbox_id), self._client.execute))

    def run_code(self, code: str, language: str = "python") -> CodeResult:
        """One-shot code run; does not raise on a non-zero exit."""
        data = drive(_SandboxOps.simple("POST", f"/sandboxes/{self.sandbox_id}/code", {"code": code, "language": language}),
                     self._client.execute)
        return command_result(data if isinstance(data, dict) else {})

    def get_host(self, port: int) -> str:
        return f"https://{self.sandbox_id}-{port}.{self._preview_domain}"

    def expose(self, port: int, **options: Any) -> ExposureInfo:
        return self.exposures.create(port, **options)

    def download_url(self, path: str) -> str:
        return drive(_SandboxOps.signed_url(self.sandbox_id, "download", path, self._client.config.api_url),
                     self._client.execute)

    def upload_url(self, path: str) -> str:
        return drive(_SandboxOps.signed_url(self.sandbox_id, "upload", path, self._client.config.api_url),
                     self._client.execute)

    def pause(self) -> Dict[str, Any]:
        return self.production.pause()

    def resume(self) -> Dict[str, Any]:
        return self.production.resume()

    def get_metrics(self) -> List[MetricsSnapshot]:
        return drive(_SandboxOps.metrics(self.sandbox_id), self._client.execute)

    def set_network_policy(self, policy: NetworkPolicy) -> None:
        self.production.set_network_policy(policy)

    def close(self) -> None:
        """Closes the HTTP connections (the sandbox keeps running)."""
        if self._keep_alive:
            self._keep_alive.set()
        self._client.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()


class AsyncSandbox:
    """A sandbox, through the asyncio client: `await AsyncSandbox.create(...)`;
    `async with await AsyncSandbox.create(...) as sandbox:` kills it at the end."""

    def __init__(self, sandbox_id: str, client: AsyncHTTPClient, preview: Optional[str] = None) -> None:
        self.sandbox_id = sandbox_id
        self._client = client
        self._preview_domain = preview_domain(preview)
        self.traffic_access_token = ""
        self.server_public_key: Optional[str] = None
        self.commands = AsyncCommands(sandbox_id, client)
        self.files = AsyncFilesystem(sandbox_id, client)
        self.pty = AsyncPty(sandbox_id, client)
        self.contexts = AsyncContexts(sandbox_id, client)
        self.desktop = AsyncDesktop(sandbox_id, client)
        self.exposures = AsyncExposures(sandbox_id, client)
        self.production = AsyncProduction(sandbox_id, client)
        self.webhooks = AsyncWebhooks(client)
        self._keep_alive: Optional["asyncio.Task[None]"] = None

    @classmethod
    async def create(cls, template: str = "python-3.11", *, timeout: int = 300, api_key: Optional[str] = None,
                     api_url: Optional[str] = None, request_timeout: Optional[float] = None, internet: bool = False,
                     memory: Optional[int] = None, env_vars: Optional[Dict[str, str]] = None,
                     metadata: Optional[Dict[str, str]] = None, keep_alive: Optional[float] = None,
                     auto_pause: bool = False, network: Optional[NetworkPolicy] = None, secure: bool = False,
                     mask_request_host: Optional[str] = None, vault_inject: bool = False, e2ee: bool = False,
                     preview_domain: Optional[str] = None) -> "AsyncSandbox":
        client = AsyncHTTPClient(resolve_config(api_url, api_key, request_timeout))
        options = _create_options(internet, memory, env_vars, metadata, auto_pause, network, secure, mask_request_host,
                                  vault_inject)
        data, keys = await adrive(_SandboxOps.create(template, timeout, options, e2ee), client.execute)
        sandbox = cls(data["sandboxID"], client, preview_domain)
        sandbox.traffic_access_token = data.get("trafficToken") or ""
        sandbox.server_public_key = data.get("serverPublicKey") or (data.get("e2ee") or {}).get("serverPublicKey")
        if keys is not None and sandbox.server_public_key:
            from .e2ee import derive_shared_key
            client.e2ee_key = derive_shared_key(keys.private_key, sandbox.server_public_key)
        if keep_alive:
            sandbox._keep_alive = asyncio.get_running_loop().create_task(sandbox._beat(keep_alive, timeout))
        return sandbox

    @classmethod
    async def connect(cls, sandbox_id: str, *, api_key: Optional[str] = None, api_url: Optional[str] = None,
                      request_timeout: Optional[float] = None, preview_domain: Optional[str] = None) -> "AsyncSandbox":
        client = AsyncHTTPClient(resolve_config(api_url, api_key, request_timeout))
        await adrive(_SandboxOps.info(sandbox_id), client.execute)
        return cls(sandbox_id, client, preview_domain)

    @staticmethod
    async def list(*, api_key: Optional[str] = None, api_url: Optional[str] = None, limit: Optional[int] = None,
                   next_token: Optional[str] = None, state: Optional[str] = None,
                   metadata: Optional[Dict[str, str]] = None) -> List[SandboxInfo]:
        client = AsyncHTTPClient(resolve_config(api_url, api_key))
        try:
            items, _ = await adrive(_SandboxOps.list(_list_params(limit, next_token, state, metadata)), client.execute)
        finally:
            await client.aclose()
        return items

    @staticmethod
    def paginate(*, api_key: Optional[str] = None, api_url: Optional[str] = None, limit: int = 50,
                 state: Optional[str] = None, metadata: Optional[Dict[str, str]] = None) -> AsyncSandboxPaginator:
        return AsyncSandboxPaginator(resolve_config(api_url, api_key), limit, state, metadata)

    async def _beat(self, interval: float, timeout: int) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.set_timeout(timeout)
            except SandboxError:
                pass

    async def kill(self) -> None:
        if self._keep_alive:
            self._keep_alive.cancel()
            self._keep_alive = None
        await adrive(_SandboxOps.simple("DELETE", f"/sandboxes/{self.sandbox_id}"), self._client.execute)

    async def set_timeout(self, timeout: int) -> None:
        await adrive(_SandboxOps.simple("POST", f"/sandboxes/{self.sandbox_id}/timeout", {"timeout": timeout}),
                     self._client.execute)

    async def is_running(self) -> bool:
        return await adrive(_SandboxOps.is_running(self.sandbox_id), self._client.execute)

    async def get_info(self) -> SandboxInfo:
        return sandbox_info(await adrive(_SandboxOps.info(self.sandbox_id), self._client.execute))

    async def run_code(self, code: str, language: str = "python") -> CodeResult:
        data = await adrive(_SandboxOps.simple("POST", f"/sandboxes/{self.sandbox_id}/code",
                                               {"code": code, "language": language}), self._client.execute)
        return command_result(data if isinstance(data, dict) else {})

    def get_host(self, port: int) -> str:
        return f"https://{self.sandbox_id}-{port}.{self._preview_domain}"

    async def expose(self, port: int, **options: Any) -> ExposureInfo:
        return await self.exposures.create(port, **options)

    async def download_url(self, path: str) -> str:
        return await adrive(_SandboxOps.signed_url(self.sandbox_id, "download", path, self._client.config.api_url),
                            self._client.execute)

    async def upload_url(self, path: str) -> str:
        return await adrive(_SandboxOps.signed_url(self.sandbox_id, "upload", path, self._client.config.api_url),
                            self._client.execute)

    async def pause(self) -> Dict[str, Any]:
        return await self.production.pause()

    async def resume(self) -> Dict[str, Any]:
        return await self.production.resume()

    async def get_metrics(self) -> List[MetricsSnapshot]:
        return await adrive(_SandboxOps.metrics(self.sandbox_id), self._client.execute)

    async def set_network_policy(self, policy: NetworkPolicy) -> None:
        await self.production.set_network_policy(policy)

    async def close(self) -> None:
        if self._keep_alive:
            self._keep_alive.cancel()
        await self._client.aclose()

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.kill()
