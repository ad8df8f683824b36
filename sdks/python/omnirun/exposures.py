"""`sandbox.exposures`: managed preview URLs for ports of the sandbox."""
from __future__ import annotations

from typing import List, Optional

from ._base import AsyncPart, SyncPart, compact
from ._http import AsyncHTTPClient, HTTPClient
from ._ops import Call, Ops
from .models import ExposureInfo, exposure_info


class _ExposureOps:
    def __init__(self, sandbox_id: str) -> None:
        self.base = f"/sandboxes/{sandbox_id}/exposures"

    def create(self, port: int, visibility: Optional[str], ttl_seconds: Optional[int], slug: Optional[str],
               open_path: Optional[str], preserve_host: Optional[bool]) -> Ops[ExposureInfo]:
        body = {"port": port, **compact(visibility=visibility, requestedTtlSeconds=ttl_seconds, slug=slug,
                                         openPath=open_path, preserveHost=preserve_host)}
        return exposure_info((yield Call("POST", self.base, json=body)) or {})

    def list(self) -> Ops[List[ExposureInfo]]:
        data = yield Call("GET", self.base)
        return [exposure_info(e) for e in data] if isinstance(data, list) else []

    def get(self, exposure_id: str) -> Ops[ExposureInfo]:
        return exposure_info((yield Call("GET", f"{self.base}/{exposure_id}")) or {})

    def refresh(self, exposure_id: str, ttl_seconds: Optional[int]) -> Ops[ExposureInfo]:
        body = compact(requestedTtlSeconds=ttl_seconds)
        return exposure_info((yield Call("POST", f"{self.base}/{exposure_id}/refresh", json=body)) or {})

    def close(self, exposure_id: str) -> Ops[None]:
        yield Call("DELETE", f"{self.base}/{exposure_id}", kind="ignore")


class Exposures(SyncPart):
    def __init__(self, sandbox_id: str, client: HTTPClient) -> None:
        super().__init__(client)
        self._ops = _ExposureOps(sandbox_id)

    def create(self, port: int, *, visibility: Optional[str] = None, ttl_seconds: Optional[int] = None,
               slug: Optional[str] = None, open_path: Optional[str] = None, preserve_host: Optional[bool] = None) -> ExposureInfo:
        return self._do(self._ops.create(port, visibility, ttl_seconds, slug, open_path, preserve_host))

    def list(self) -> List[ExposureInfo]:
        return self._do(self._ops.list())

    def get(self, exposure_id: str) -> ExposureInfo:
        return self._do(self._ops.get(exposure_id))

    def refresh(self, exposure_id: str, *, ttl_seconds: Optional[int] = None) -> ExposureInfo:
        return self._do(self._ops.refresh(exposure_id, ttl_seconds))

    def close(self, exposure_id: str) -> None:
        self._do(self._ops.close(exposure_id))


class AsyncExposures(AsyncPart):
    def __init__(self, sandbox_id: str, client: AsyncHTTPClient) -> None:
        super().__init__(client)
        self._ops = _ExposureOps(sandbox_id)

    async def create(self, port: int, *, visibility: Optional[str] = None, ttl_seconds: Optional[int] = None,
                     slug: Optional[str] = None, open_path: Optional[str] = None,
                     preserve_host: Optional[bool] = None) -> ExposureInfo:
        return await self._do(self._ops.create(port, visibility, ttl_seconds, slug, open_path, preserve_host))

    async def list(self) -> List[ExposureInfo]:
        return await self._do(self._ops.list())

    async def get(self, exposure_id: str) -> ExposureInfo:
        return await self._do(self._ops.get(exposure_id))

    async def refresh(self, exposure_id: str, *, ttl_seconds: Optional[int] = None) -> ExposureInfo:
        return await self._do(self._ops.refresh(exposure_id, ttl_seconds))

    async def close(self, exposure_id: str) -> None:
        await self._do(self._ops.close(exposure_id))
