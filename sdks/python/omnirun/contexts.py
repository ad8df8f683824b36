"""`sandbox.contexts`: persistent interpreters whose state survives between executions."""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from ._base import AsyncPart, SyncPart, compact
from ._http import AsyncHTTPClient, HTTPClient
from ._ops import Call, Ops, Stream
from .models import ContextInfo, ExecutionResult, Logs, ResultItem, context_info, result_item


class _ContextOps:
    def __init__(self, sandbox_id: str) -> None:
        self.base = f"/sandboxes/{sandbox_id}/contexts"

    def create(self, language: str, cwd: Optional[str]) -> Ops[ContextInfo]:
        data = yield Call("POST", self.base, json={"language": language, **compact(cwd=cwd)})
        return context_info(data if isinstance(data, dict) else {}, language)

    def list(self) -> Ops[List[ContextInfo]]:
        data = yield Call("GET", self.base)
        return [context_info(c) for c in data] if isinstance(data, list) else []

    def execute(self, context_id: str, code: str, on_stdout: Optional[Callable[[str], Any]],
                on_stderr: Optional[Callable[[str], Any]], on_result: Optional[Callable[[ResultItem], Any]]) -> Ops[ExecutionResult]:
        if not (on_stdout or on_stderr or on_result):
            data = yield Call("POST", f"{self.base}/{context_id}/execute", json={"code": code})
            data = data if isinstance(data, dict) else {}
            logs = data.get("logs") or {}
            return ExecutionResult([result_item(r) for r in data.get("results") or []],
                                   Logs(logs.get("stdout") or "", logs.get("stderr") or ""), data.get("error"),
                                   int(data.get("execution_count") or 0))
        out: List[str] = []
        err: List[str] = []
        results: List[ResultItem] = []
        count = [0]

        def on_event(event: Any) -> bool:
            if not isinstance(event, dict):
                return False
            kind = event.get("type")
            if kind == "stdout":
                out.append(event.get("data") or "")
                if on_stdout:
                    on_stdout(event.get("data") or "")
            elif kind == "stderr":
                err.append(event.get("data") or "")
                if on_stderr:
                    on_stderr(event.get("data") or "")
            elif kind == "result":
                item = result_item(event.get("data") or {})
                results.append(item)
                if on_result:
                    on_result(item)
            elif kind == "done":
                count[0] = int(event.get("execution_count") or 0)
            return False

        yield Stream("POST", f"{self.base}/{context_id}/stream-execute", on_event, json={"code": code})
        return ExecutionResult(results, Logs("\n".join(out), "\n".join(err)), None, count[0])

    def restart(self, context_id: str) -> Ops[ContextInfo]:
        data = yield Call("POST", f"{self.base}/{context_id}/restart")
        return context_info(data if isinstance(data, dict) else {}, id=context_id)

    def delete(self, context_id: str) -> Ops[None]:
        yield Call("DELETE", f"{self.base}/{context_id}", kind="ignore")


class Contexts(SyncPart):
    def __init__(self, sandbox_id: str, client: HTTPClient) -> None:
        super().__init__(client)
        self._ops = _ContextOps(sandbox_id)

    def create(self, language: str = "python", *, cwd: Optional[str] = None) -> ContextInfo:
        return self._do(self._ops.create(language, cwd))

    def list(self) -> List[ContextInfo]:
        return self._do(self._ops.list())

    def execute(self, context_id: str, code: str, *, on_stdout: Optional[Callable[[str], Any]] = None,
                on_stderr: Optional[Callable[[str], Any]] = None,
                on_result: Optional[Callable[[ResultItem], Any]] = None) -> ExecutionResult:
        return self._do(self._ops.execute(context_id, code, on_stdout, on_stderr, on_result))

    def restart(self, context_id: str) -> ContextInfo:
        return self._do(self._ops.restart(context_id))

    def delete(self, context_id: str) -> None:
        self._do(self._ops.delete(context_id))


class AsyncContexts(AsyncPart):
    def __init__(self, sandbox_id: str, client: AsyncHTTPClient) -> None:
        super().__init__(client)
        self._ops = _ContextOps(sandbox_id)

    async def create(self, language: str = "python", *, cwd: Optional[str] = None) -> ContextInfo:
        return await self._do(self._ops.create(language, cwd))

    async def list(self) -> List[ContextInfo]:
        return await self._do(self._ops.list())

    async def execute(self, context_id: str, code: str, *, on_stdout: Optional[Callable[[str], Any]] = None,
                      on_stderr: Optional[Callable[[str], Any]] = None,
                      on_result: Optional[Callable[[ResultItem], Any]] = None) -> ExecutionResult:
        return await self._do(self._ops.execute(context_id, code, on_stdout, on_stderr, on_result))

    async def restart(self, context_id: str) -> ContextInfo:
        return await self._do(self._ops.restart(context_id))

    async def delete(self, context_id: str) -> None:
        await self._do(self._ops.delete(context_id))
