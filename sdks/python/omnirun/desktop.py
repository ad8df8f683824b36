"""`sandbox.desktop`: GUI sandboxes (screenshots, mouse, keyboard, the noVNC stream)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from ._base import AsyncPart, SyncPart, compact
from ._http import AsyncHTTPClient, HTTPClient
from ._ops import Call, Ops
from .models import DesktopStreamInfo, ScreenInfo


class _DesktopOps:
    def __init__(self, sandbox_id: str) -> None:
        self.base = f"/sandboxes/{sandbox_id}/desktop"

    def screenshot(self, scale: Optional[float], max_width: Optional[int], max_height: Optional[int]) -> Ops[bytes]:
        query = {k: str(v) for k, v in compact(scale=scale, maxWidth=max_width, maxHeight=max_height).items()}
        return (yield Call("GET", self.base + "/screenshot", params=query or None, kind="bytes"))

    def mouse(self, body: Dict[str, Any]) -> Ops[None]:
        yield Call("POST", self.base + "/mouse", json=body, kind="ignore")

    def keyboard(self, body: Dict[str, Any]) -> Ops[None]:
        yield Call("POST", self.base + "/keyboard", json=body, kind="ignore")

    def screen(self) -> Ops[ScreenInfo]:
        d = (yield Call("GET", self.base + "/screen")) or {}
        return ScreenInfo(d.get("width") or 0, d.get("height") or 0, d.get("cursorX") or 0, d.get("cursorY") or 0)

    def stream(self) -> Ops[DesktopStreamInfo]:
        d = (yield Call("GET", self.base + "/stream")) or {}
        return DesktopStreamInfo(d.get("novncPort") or 0, d.get("vncPort") or 0, d.get("wsPath") or "")


def _mouse(action: str, x: Optional[int] = None, y: Optional[int] = None, end_x: Optional[int] = None,
           end_y: Optional[int] = None, direction: Optional[str] = None, amount: Optional[int] = None) -> Dict[str, Any]:
    return {"action": action, **compact(x=x, y=y, endX=end_x, endY=end_y, direction=direction, amount=amount)}


class Desktop(SyncPart):
    def __init__(self, sandbox_id: str, client: HTTPClient) -> None:
        super().__init__(client)
        self._ops = _DesktopOps(sandbox_id)

    def screenshot(self, *, scale: Optional[float] = None, max_width: Optional[int] = None,
                   max_height: Optional[int] = None) -> bytes:
        """The screen as PNG bytes; `scale` (0-1] or `max_width`/`max_height` shrink it (never enlarged).
        The image's width over the screen's (`get_screen()`) is the factor to divide image coordinates by."""
        return self._do(self._ops.screenshot(scale, max_width, max_height))

    def mouse(self, action: str, **opts: Any) -> None:
        self._do(self._ops.mouse(_mouse(action, **opts)))

    def keyboard(self, action: str, *, text: Optional[str] = None, key: Optional[str] = None) -> None:
        self._do(self._ops.keyboard({"action": action, **compact(text=text, key=key)}))

    def get_screen(self) -> ScreenInfo:
        return self._do(self._ops.screen())

    def get_stream_info(self) -> DesktopStreamInfo:
        return self._do(self._ops.stream())

    def left_click(self, x: int, y: int) -> None:
        self.mouse("click", x=x, y=y)

    def right_click(self, x: int, y: int) -> None:
        self.mouse("rightClick", x=x, y=y)

    def double_click(self, x: int, y: int) -> None:
        self.mouse("doubleClick", x=x, y=y)

    def move_mouse(self, x: int, y: int) -> None:
        self.mouse("move", x=x, y=y)

    def drag(self, start_x: int, start_y: int, end_x: int, end_y: int) -> None:
        self.mouse("drag", x=start_x, y=start_y, end_x=end_x, end_y=end_y)

    def scroll(self, direction: str, amount: Optional[int] = None) -> None:
        self.mouse("scroll", direction=direction, amount=amount)

    def type(self, text: str) -> None:
        self.keyboard("type", text=text)

    def press(self, key: str) -> None:
        self.keyboard("press", key=key)


class AsyncDesktop(AsyncPart):
    def __init__(self, sandbox_id: str, client: AsyncHTTPClient) -> None:
        super().__init__(client)
        self._ops = _DesktopOps(sandbox_id)

    async def screenshot(self, *, scale: Optional[float] = None, max_width: Optional[int] = None,
                         max_height: Optional[int] = None) -> bytes:
        return await self._do(self._ops.screenshot(scale, max_width, max_height))

    async def mouse(self, action: str, **opts: Any) -> None:
        await self._do(self._ops.mouse(_mouse(action, **opts)))

    async def keyboard(self, action: str, *, text: Optional[str] = None, key: Optional[str] = None) -> None:
        await self._do(self._ops.keyboard({"action": action, **compact(text=text, key=key)}))

    async def get_screen(self) -> ScreenInfo:
        return await self._do(self._ops.screen())

    async def get_stream_info(self) -> DesktopStreamInfo:
        return await self._do(self._ops.stream())

    async def left_click(self, x: int, y: int) -> None:
        await self.mouse("click", x=x, y=y)

    async def right_click(self, x: int, y: int) -> None:
        await self.mouse("rightClick", x=x, y=y)

    async def double_click(self, x: int, y: int) -> None:
        await self.mouse("doubleClick", x=x, y=y)

    async def move_mouse(self, x: int, y: int) -> None:
        await self.mouse("move", x=x, y=y)

    async def drag(self, start_x: int, start_y: int, end_x: int, end_y: int) -> None:
        await self.mouse("drag", x=start_x, y=start_y, end_x=end_x, end_y=end_y)

    async def scroll(self, direction: str, amount: Optional[int] = None) -> None:
        await self.mouse("scroll", direction=direction, amount=amount)

    async def type(self, text: str) -> None:
        await self.keyboard("type", text=text)

    async def press(self, key: str) -> None:
        await self.keyboard("press", key=key)
