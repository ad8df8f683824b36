"""`sandbox.pty`: interactive terminals, by polling (input, read, resize, kill)."""
from __future__ import annotations

from typing import List

from ._base import AsyncPart, SyncPart
from ._http import AsyncHTTPClient, HTTPClient
from ._ops import Call, Ops
from .models import PtyInfo


class _PtyOps:
    def __init__(self, sandbox_id: str) -> None:
        self.base = f"/sandboxes/{sandbox_id}/pty"

    def create(self, cols: int, rows: int) -> Ops[int]:
        data = yield Call("POST", self.base, json={"cols": cols, "rows": rows})
        return int((data or {}).get("pid") or 0)

    def list(self) -> Ops[List[PtyInfo]]:
        data = yield Call("GET", self.base)
        items = data if isinstance(data, list) else []
        return [PtyInfo(int(p.get("pid") or 0), bool(p.get("running", False)), p.get("startedAt")) for p in items]

    def send(self, pid: int, data: str) -> Ops[None]:
        yield Call("POST", f"{self.base}/{pid}/input", json={"data": data}, kind="ignore")

    def resize(self, pid: int, cols: int, rows: int) -> Ops[None]:
        yield Call("POST", f"{self.base}/{pid}/resize", json={"cols": cols, "rows": rows}, kind="ignore")

    def read(self, pid: int) -> Ops[str]:
        data = yield Call("GET", f"{self.base}/{pid}/read")
        return (data or {}).get("data") or "" if isinstance(data, dict) else ""

    def kill(self, pid: int) -> Ops[None]:
        yield Call("DELETE", f"{self.base}/{pid}", kind="ignore")


class PtySession(SyncPart):
    def __init__(self, pid: int, ops: _PtyOps, client: HTTPClient) -> None:
        super().__init__(client)
        self.pid = pid
        self._ops = ops

    def send_stdin(self, data: str) -> None:
        self._do(self._ops.send(self.pid, data))

    def resize(self, cols: int, rows: int) -> None:
        self._do(self._ops.resize(self.pid, cols, rows))

    def read(self) -> str:
        """The output since the previous read ("" when there is none; never blocks)."""
        return self._do(self._ops.read(self.pid))

    def kill(self) -> None:
        self._do(self._ops.kill(self.pid))


class AsyncPtySession(AsyncPart):
    def __init__(self, pid: int, ops: _PtyOps, client: AsyncHTTPClient) -> None:
        super().__init__(client)
        self.pid = pid
        self._ops = ops

    async def send_stdin(self, data: str) -> None:
        await self._do(self._ops.send(self.pid, data))

    async def resize(self, cols: int, rows: int) -> None:
        await self._do(self._ops.resize(self.pid, cols, rows))

    async def read(self) -> str:
        return await self._do(self._ops.read(self.pid))

    async def kill(self) -> None:
        await self._do(self._ops.kill(self.pid))


class Pty(SyncPart):
    def __init__(self, sandbox_id: str, client: HTTPClient) -> None:
        super().__init__(client)
        self._ops = _PtyOps(sandbox_id)

    def create(self, *, cols: int = 80, rows: int = 24) -> PtySession:
        return PtySession(self._do(self._ops.create(cols, rows)), self._ops, self._client)

    def list(self) -> List[PtyInfo]:
        return self._do(self._ops.list())


class AsyncPty(AsyncPart):
    def __init__(self, sandbox_id: str, client: AsyncHTTPClient) -> None:
        super().__init__(client)
        self._ops = _PtyOps(sandbox_id)

    async def create(self, *, cols: int = 80, rows: int = 24) -> AsyncPtySession:
        return AsyncPtySession(await self._do(self._ops.create(cols, rows)), self._ops, self._client)

    async def list(self) -> List[PtyInfo]:
        return await self._do(self._ops.list())
