"""`sandbox.commands`: foreground, streamed (callbacks) and background commands."""
from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, Union

from ._base import AsyncPart, SyncPart, compact
from ._http import AsyncHTTPClient, HTTPClient
from ._ops import Call, Collected, Ops, Sleep, Stream
from .errors import CommandExitException, TimeoutError
from .models import CommandResult, ProcessInfo, command_result, process_info

OutputCallback = Callable[[str], Any]


def _collect(out: Collected, on_stdout: Optional[OutputCallback], on_stderr: Optional[OutputCallback]) -> Callable[[Any], bool]:
    def on_event(event: Any) -> bool:
        if not isinstance(event, dict):
            return False
        kind = event.get("type")
        if kind == "stdout" and event.get("data"):
            out.stdout.append(event["data"])
            if on_stdout:
                on_stdout(event["data"])
        elif kind == "stderr" and event.get("data"):
            out.stderr.append(event["data"])
            if on_stderr:
                on_stderr(event["data"])
        elif kind == "exit":
            out.exit_code = int(event.get("exit_code") or 0)
            return True
        return False
    return on_event


class _HandleOps:
    def __init__(self, sandbox_id: str, pid: int) -> None:
        self.pid = pid
        self.url = f"/sandboxes/{sandbox_id}/commands/{pid}"

    def info(self) -> Ops[ProcessInfo]:
        return process_info((yield Call("GET", self.url)) or {})

    def wait(self, timeout: float) -> Ops[CommandResult]:
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = process_info((yield Call("GET", self.url)) or {})
            if not info.running:
                return CommandResult(info.stdout or "", info.stderr or "", info.exit_code)
            yield Sleep(0.5)
        raise TimeoutError(f"Process {self.pid} did not finish within {timeout}s")

    def kill(self) -> Ops[None]:
        yield Call("DELETE", self.url, kind="ignore")

    def send_stdin(self, data: str) -> Ops[None]:
        yield Call("POST", self.url + "/stdin", json={"data": data}, kind="ignore")

    def stream(self, on_stdout: Optional[OutputCallback], on_stderr: Optional[OutputCallback]) -> Ops[CommandResult]:
        out = Collected()
        yield Stream("GET", self.url + "/stream", _collect(out, on_stdout, on_stderr))
        return CommandResult("".join(out.stdout), "".join(out.stderr), out.exit_code)


class CommandHandle(SyncPart):
    """A background command. Iterate it for its events (`{"type": "stdout", "data": ...}`)."""

    def __init__(self, pid: int, sandbox_id: str, client: HTTPClient) -> None:
        super().__init__(client)
        self.pid = pid
        self._ops = _HandleOps(sandbox_id, pid)
        self._result: Optional[CommandResult] = None

    def wait(self, timeout: float = 60.0) -> CommandResult:
        """Polls until the command ends; returns its whole output (does not raise on a non-zero exit)."""
        if self._result is None:
            self._result = self._do(self._ops.wait(timeout))
        return self._result

    def get_info(self) -> ProcessInfo:
        return self._do(self._ops.info())

    def kill(self) -> None:
        self._do(self._ops.kill())

    def send_stdin(self, data: str) -> None:
        self._do(self._ops.send_stdin(data))

    def stream(self, on_stdout: Optional[OutputCallback] = None, on_stderr: Optional[OutputCallback] = None) -> CommandResult:
        self._result = self._do(self._ops.stream(on_stdout, on_stderr))
        return self._result

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for event in self._client.iter_sse("GET", self._ops.url + "/stream"):
            yield event
            if isinstance(event, dict) and event.get("type") == "exit":
                return


class AsyncCommandHandle(AsyncPart):
    """A background command (async). `async for event in handle` gives its events."""

    def __init__(self, pid: int, sandbox_id: str, client: AsyncHTTPClient) -> None:
        super().__init__(client)
        self.pid = pid
        self._ops = _HandleOps(sandbox_id, pid)
        self._result: Optional[CommandResult] = None

    async def wait(self, timeout: float = 60.0) -> CommandResult:
        if self._result is None:
            self._result = await self._do(self._ops.wait(timeout))
        return self._result

    async def get_info(self) -> ProcessInfo:
        return await self._do(self._ops.info())

    async def kill(self) -> None:
        await self._do(self._ops.kill())

    async def send_stdin(self, data: str) -> None:
        await self._do(self._ops.send_stdin(data))

    async def stream(self, on_stdout: Optional[OutputCallback] = None, on_stderr: Optional[OutputCallback] = None) -> CommandResult:
        self._result = await self._do(self._ops.stream(on_stdout, on_stderr))
        return self._result

    async def __aiter__(self) -> AsyncIterator[Dict[str, Any]]:
        async for event in self._client.iter_sse("GET", self._ops.url + "/stream"):
            yield event
            if isinstance(event, dict) and event.get("type") == "exit":
                return


class _CommandOps:
    def __init__(self, sandbox_id: str) -> None:
        self.sandbox_id = sandbox_id
        self.base = f"/sandboxes/{sandbox_id}/commands"

    def run(self, cmd: str, background: bool, on_stdout: Optional[OutputCallback], on_stderr: Optional[OutputCallback],
            cwd: Optional[str], envs: Optional[Dict[str, str]], user: Optional[str], timeout: int) -> Ops[Union[CommandResult, int]]:
        body: Dict[str, Any] = {"command": cmd, "timeout": timeout, **compact(cwd=cwd or None, envs=envs, user=user)}
        if background:
            body["background"] = True
            return int(((yield Call("POST", self.base, json=body)) or {}).get("pid") or 0)
        if on_stdout or on_stderr:
            body["background"] = True
            pid = int(((yield Call("POST", self.base, json=body)) or {}).get("pid") or 0)
            result: CommandResult = yield from _HandleOps(self.sandbox_id, pid).stream(on_stdout, on_stderr)
        else:
            result = command_result((yield Call("POST", self.base, json=body)) or {})
        if result.exit_code != 0:
            raise CommandExitException(result.stdout, result.stderr, result.exit_code)
        return result

    def list(self) -> Ops[List[ProcessInfo]]:
        data = yield Call("GET", self.base)
        return [process_info(p) for p in data] if isinstance(data, list) else []

    def get(self, pid: int) -> Ops[ProcessInfo]:
        return process_info((yield Call("GET", f"{self.base}/{pid}")) or {})

    def kill(self, pid: int) -> Ops[None]:
        yield Call("DELETE", f"{self.base}/{pid}", kind="ignore")

    def send_stdin(self, pid: int, data: str) -> Ops[None]:
        yield Call("POST", f"{self.base}/{pid}/stdin", json={"data": data}, kind="ignore")


class Commands(SyncPart):
    def __init__(self, sandbox_id: str, client: HTTPClient) -> None:
        super().__init__(client)
        self._ops = _CommandOps(sandbox_id)

    def run(self, cmd: str, *, background: bool = False, on_stdout: Optional[OutputCallback] = None,
            on_stderr: Optional[OutputCallback] = None, cwd: Optional[str] = None, envs: Optional[Dict[str, str]] = None,
            user: Optional[str] = None, timeout: int = 60) -> Any:
        """Runs `cmd` with bash. Returns a `CommandResult` (raises `CommandExitException` on a
        non-zero exit), or a `CommandHandle` with `background=True`. With `on_stdout`/
        `on_stderr` the output is streamed to the callbacks as it is produced."""
        value = self._do(self._ops.run(cmd, background, on_stdout, on_stderr, cwd, envs, user, timeout))
        if background:
            return CommandHandle(int(value), self._ops.sandbox_id, self._client)
        return value

    def list(self) -> List[ProcessInfo]:
        return self._do(self._ops.list())

    def get(self, pid: int) -> ProcessInfo:
        return self._do(self._ops.get(pid))

    def kill(self, pid: int) -> None:
        self._do(self._ops.kill(pid))

    def send_stdin(self, pid: int, data: str) -> None:
        self._do(self._ops.send_stdin(pid, data))

    def connect(self, pid: int) -> CommandHandle:
        return CommandHandle(pid, self._ops.sandbox_id, self._client)


class AsyncCommands(AsyncPart):
    def __init__(self, sandbox_id: str, client: AsyncHTTPClient) -> None:
        super().__init__(client)
        self._ops = _CommandOps(sandbox_id)

    async def run(self, cmd: str, *, background: bool = False, on_stdout: Optional[OutputCallback] = None,
                  on_stderr: Optional[OutputCallback] = None, cwd: Optional[str] = None, envs: Optional[Dict[str, str]] = None,
                  user: Optional[str] = None, timeout: int = 60) -> Any:
        value = await self._do(self._ops.run(cmd, background, on_stdout, on_stderr, cwd, envs, user, timeout))
        if background:
            return AsyncCommandHandle(int(value), self._ops.sandbox_id, self._client)
        return value

    async def list(self) -> List[ProcessInfo]:
        return await self._do(self._ops.list())

    async def get(self, pid: int) -> ProcessInfo:
        return await self._do(self._ops.get(pid))

    async def kill(self, pid: int) -> None:
        await self._do(self._ops.kill(pid))

    async def send_stdin(self, pid: int, data: str) -> None:
        await self._do(self._ops.send_stdin(pid, data))

    def connect(self, pid: int) -> AsyncCommandHandle:
        return AsyncCommandHandle(pid, self._ops.sandbox_id, self._client)
