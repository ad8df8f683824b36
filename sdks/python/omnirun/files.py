"""`sandbox.files`: text and binary files, listings, watching a folder."""
from __future__ import annotations

import asyncio
import posixpath
import threading
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Sequence, Union

from ._base import AsyncPart, SyncPart, compact
from ._http import AsyncHTTPClient, HTTPClient, sse_payloads
from ._ops import Call, Ops
from .models import EntryInfo, FilesystemEvent, entry_info


def _params(path: str, user: Optional[str] = None, **extra: Optional[str]) -> Dict[str, str]:
    return {"path": path, **compact(user=user, **extra)}


def _event(raw: Any) -> Optional[FilesystemEvent]:
    if not isinstance(raw, dict) or not raw.get("type"):
        return None
    return FilesystemEvent(raw["type"], raw.get("path") or "", raw.get("name") or "", raw.get("timestamp"))


class _FileOps:
    def __init__(self, sandbox_id: str) -> None:
        self.base = f"/sandboxes/{sandbox_id}/files"

    def read_text(self, path: str, user: Optional[str]) -> Ops[str]:
        data = yield Call("GET", self.base, params=_params(path, user))
        return (data or {}).get("content") or "" if isinstance(data, dict) else ""

    def read_bytes(self, path: str, user: Optional[str]) -> Ops[bytes]:
        return (yield Call("GET", self.base + "/download", params=_params(path, user), kind="bytes"))

    def write(self, path: str, content: Union[str, bytes], user: Optional[str]) -> Ops[EntryInfo]:
        name = posixpath.basename(path) or "upload"
        if isinstance(content, (bytes, bytearray, memoryview)):
            body = bytes(content)
            data = yield Call("POST", self.base + "/upload", files={"file": (name, body, "application/octet-stream")},
                              data={"path": path, **compact(user=user)})
            info = data if isinstance(data, dict) else {}
            return EntryInfo(info.get("name") or name, info.get("path") or path, False, int(info.get("size") or len(body)))
        data = yield Call("POST", self.base, json={"path": path, "content": content, **compact(user=user)})
        info = data if isinstance(data, dict) else {}
        return EntryInfo(name, info.get("path") or path, False, len(content.encode()))

    def write_batch(self, entries: Sequence[Dict[str, str]]) -> Ops[List[EntryInfo]]:
        data = yield Call("POST", self.base + "/batch", json=[{"path": e["path"], "content": e["content"]} for e in entries])
        return [entry_info(e) for e in data] if isinstance(data, list) else []

    def list(self, path: str, depth: Optional[int], user: Optional[str]) -> Ops[List[EntryInfo]]:
        data = yield Call("GET", self.base + "/list",
                          params=_params(path, user, depth=str(depth) if depth is not None and depth != 1 else None))
        return [entry_info(e) for e in data] if isinstance(data, list) else []

    def exists(self, path: str, user: Optional[str]) -> Ops[bool]:
        data = yield Call("GET", self.base + "/exists", params=_params(path, user))
        return bool(isinstance(data, dict) and data.get("exists"))

    def info(self, path: str, user: Optional[str]) -> Ops[EntryInfo]:
        data = yield Call("GET", self.base + "/info", params=_params(path, user))
        return entry_info(data if isinstance(data, dict) else {}, path)

    def remove(self, path: str, user: Optional[str]) -> Ops[None]:
        yield Call("DELETE", self.base, params=_params(path, user), kind="ignore")

    def rename(self, old_path: str, new_path: str, user: Optional[str]) -> Ops[EntryInfo]:
        data = yield Call("POST", self.base + "/rename", json={"oldPath": old_path, "newPath": new_path, **compact(user=user)})
        return entry_info(data if isinstance(data, dict) else {}, new_path)

    def make_dir(self, path: str, user: Optional[str]) -> Ops[None]:
        yield Call("POST", self.base + "/mkdir", json={"path": path, **compact(user=user)}, kind="ignore")

    def signed_url(self, kind: str, path: str, api_url: str) -> Ops[str]:
        data = yield Call("POST", self.base + f"/{kind}-url", json={"path": path})
        url = (data or {}).get("url") or "" if isinstance(data, dict) else ""
        if url and not url.startswith("http"):
            url = api_url.rstrip("/") + url
        return url


class WatchHandle:
    """Watches a folder in the background (a thread reading the server's event stream).
    `get_new_events()` drains what arrived; `stop()` closes the stream."""

    def __init__(self, client: HTTPClient, path: str, params: Dict[str, str]) -> None:
        self._events: List[FilesystemEvent] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.error: Optional[BaseException] = None
        self._response = client.open_sse(path, params)
        self._thread = threading.Thread(target=self._run, name="omnirun-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in sse_payloads(self._response.iter_lines()):
                if self._stopped.is_set():
                    break
                event = _event(raw)
                if event:
                    with self._lock:
                        self._events.append(event)
        except Exception as exc:  # the stream closed or could not open
            if not self._stopped.is_set():
                self.error = exc

    def get_new_events(self) -> List[FilesystemEvent]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def stop(self) -> None:
        self._stopped.set()
        self._response.close()  # the reading thread's next read fails and it ends
        self._thread.join(timeout=5)


class AsyncWatchHandle:
    """Watches a folder in an asyncio task; `get_new_events()` drains, `stop()` cancels."""

    def __init__(self, client: AsyncHTTPClient, path: str, params: Dict[str, str]) -> None:
        self._events: List[FilesystemEvent] = []
        self.error: Optional[BaseException] = None
        self._task = asyncio.get_running_loop().create_task(self._run(client, path, params))

    async def _run(self, client: AsyncHTTPClient, path: str, params: Dict[str, str]) -> None:
        try:
            async for raw in client.iter_sse("GET", path, params):
                event = _event(raw)
                if event:
                    self._events.append(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc

    def get_new_events(self) -> List[FilesystemEvent]:
        events, self._events = self._events, []
        return events

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


class Filesystem(SyncPart):
    def __init__(self, sandbox_id: str, client: HTTPClient) -> None:
        super().__init__(client)
        self._ops = _FileOps(sandbox_id)

    def read(self, path: str, format: str = "text", *, user: Optional[str] = None) -> Any:
        """`format`: "text" (str), "bytes" (bytes) or "stream" (an iterator of byte chunks)."""
        if format == "bytes":
            return self._do(self._ops.read_bytes(path, user))
        if format == "stream":
            return self._client.iter_bytes(self._ops.base + "/download", _params(path, user))
        return self._do(self._ops.read_text(path, user))

    def write(self, path_or_entries: Union[str, Sequence[Dict[str, str]]], content: Union[str, bytes, None] = None, *,
              user: Optional[str] = None) -> Any:
        """`write(path, "text")`, `write(path, b"bytes")` (multipart upload) or
        `write([{"path": ..., "content": ...}, ...])` (a batch; returns a list)."""
        if not isinstance(path_or_entries, str):
            return self._do(self._ops.write_batch(path_or_entries))
        return self._do(self._ops.write(path_or_entries, content if content is not None else "", user))

    def list(self, path: str = "/", *, depth: Optional[int] = None, user: Optional[str] = None) -> List[EntryInfo]:
        return self._do(self._ops.list(path, depth, user))

    def exists(self, path: str, *, user: Optional[str] = None) -> bool:
        return self._do(self._ops.exists(path, user))

    def info(self, path: str, *, user: Optional[str] = None) -> EntryInfo:
        return self._do(self._ops.info(path, user))

    def remove(self, path: str, *, user: Optional[str] = None) -> None:
        self._do(self._ops.remove(path, user))

    def rename(self, old_path: str, new_path: str, *, user: Optional[str] = None) -> EntryInfo:
        return self._do(self._ops.rename(old_path, new_path, user))

    def make_dir(self, path: str, *, user: Optional[str] = None) -> None:
        self._do(self._ops.make_dir(path, user))

    def watch_dir(self, path: str, *, recursive: bool = False) -> WatchHandle:
        return WatchHandle(self._client, self._ops.base + "/watch", _params(path, recursive="true" if recursive else None))


class AsyncFilesystem(AsyncPart):
    def __init__(self, sandbox_id: str, client: AsyncHTTPClient) -> None:
        super().__init__(client)
        self._ops = _FileOps(sandbox_id)

    async def read(self, path: str, format: str = "text", *, user: Optional[str] = None) -> Any:
        """`format`: "text" (str), "bytes" (bytes) or "stream" (an async iterator of byte chunks)."""
        if format == "bytes":
            return await self._do(self._ops.read_bytes(path, user))
        if format == "stream":
            return self._client.iter_bytes(self._ops.base + "/download", _params(path, user))
        return await self._do(self._ops.read_text(path, user))

    async def write(self, path_or_entries: Union[str, Sequence[Dict[str, str]]], content: Union[str, bytes, None] = None, *,
                    user: Optional[str] = None) -> Any:
        if not isinstance(path_or_entries, str):
            return await self._do(self._ops.write_batch(path_or_entries))
        return await self._do(self._ops.write(path_or_entries, content if content is not None else "", user))

    async def list(self, path: str = "/", *, depth: Optional[int] = None, user: Optional[str] = None) -> List[EntryInfo]:
        return await self._do(self._ops.list(path, depth, user))

    async def exists(self, path: str, *, user: Optional[str] = None) -> bool:
        return await self._do(self._ops.exists(path, user))

    async def info(self, path: str, *, user: Optional[str] = None) -> EntryInfo:
        return await self._do(self._ops.info(path, user))

    async def remove(self, path: str, *, user: Optional[str] = None) -> None:
        await self._do(self._ops.remove(path, user))

    async def rename(self, old_path: str, new_path: str, *, user: Optional[str] = None) -> EntryInfo:
        return await self._do(self._ops.rename(old_path, new_path, user))

    async def make_dir(self, path: str, *, user: Optional[str] = None) -> None:
        await self._do(self._ops.make_dir(path, user))

    def watch_dir(self, path: str, *, recursive: bool = False) -> AsyncWatchHandle:
        return AsyncWatchHandle(self._client, self._ops.base + "/watch", _params(path, recursive="true" if recursive else None))
