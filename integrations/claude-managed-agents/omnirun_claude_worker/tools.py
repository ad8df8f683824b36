"""The `agent_toolset_20260401` tools (bash, read, write, edit, glob, grep) with the same
names and input schemas as the `anthropic` package's reference implementations, executed
inside the session's OmniRun sandbox through the OmniRun API. Nothing a tool reads from
the sandbox is taken unbounded: command output is cut in the guest, files are sized
before they are read."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import posixpath
import time
import uuid
from typing import Any, Awaitable, Callable, List, Optional

from anthropic.lib.tools import ToolError, beta_async_tool
from anthropic.types.beta import (
    BetaManagedAgentsAgentToolset20260401BashInput,
    BetaManagedAgentsAgentToolset20260401EditInput,
    BetaManagedAgentsAgentToolset20260401GlobInput,
    BetaManagedAgentsAgentToolset20260401GrepInput,
    BetaManagedAgentsAgentToolset20260401ReadInput,
    BetaManagedAgentsAgentToolset20260401WriteInput,
)
from omnirun import AsyncSandbox
from omnirun.errors import SandboxError

from .guest import BASH_WRAPPER, GUEST_DIR, HELPER

log = logging.getLogger("omnirun_claude_worker.tools")

BASH_OUTPUT_LIMIT = 30_000
BASH_DEFAULT_TIMEOUT = 295.0
READ_LIMIT = 110_000
EDIT_LIMIT = 256 * 1024
WRITE_LIMIT = 16 * 1024 * 1024
IMAGE_LIMIT = 5 * 1024 * 1024 * 3 // 4
PDF_LIMIT = 20 * 1024 * 1024
HELPER_OUTPUT_LIMIT = 1024 * 1024
BINARY_MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                      ".webp": "image/webp", ".pdf": "application/pdf"}


class SessionBox:
    """The sandbox of one session as the tools see it: the workdir and the calls."""

    def __init__(self, sandbox: AsyncSandbox, workdir: str, on_tool: Optional[Callable[[str], None]] = None) -> None:
        self.sandbox = sandbox
        self.workdir = workdir
        self.on_tool = on_tool  # called when a tool call starts running (for the figures)
        self.calls_in_flight = 0
        self.last_call_end = time.monotonic()

    @property
    def sandbox_id(self) -> str:
        return self.sandbox.sandbox_id

    async def install(self) -> None:
        """Puts the bash wrapper and the helper in the guest, and makes the workdir."""
        await asyncio.gather(
            self.sandbox.files.write([{"path": f"{GUEST_DIR}/bash.sh", "content": BASH_WRAPPER},
                                      {"path": f"{GUEST_DIR}/helper.py", "content": HELPER}]),
            self.sandbox.files.make_dir(self.workdir))

    async def stat(self, path: str) -> dict:
        """{"kind": "file"|"dir"|"other", "size"} or {"error"}, following symlinks."""
        out, code = await self.run(f"stat -L -c '%F|%s' -- {_quote(path)} 2>&1 | head -c 512", timeout=30)
        line = out.strip().splitlines()[-1] if out.strip() else ""
        kind, _, size = line.rpartition("|")
        if not size.isdigit():
            reason = "no such file or directory" if "No such file" in out else "permission denied" \
                if "Permission denied" in out else "cannot stat"
            return {"error": reason}
        return {"kind": "file" if kind.startswith("regular") else "dir" if kind == "directory" else "other",
                "size": int(size)}

    def resolve(self, path: str) -> str:
        if not path:
            raise ToolError("a path is required")
        return posixpath.normpath(posixpath.join(self.workdir, path))

    async def run(self, command: str, timeout: float) -> tuple[str, int]:
        try:
            result = await self.sandbox.commands.run(command, timeout=max(1, int(timeout)))
            return result.stdout, result.exit_code
        except SandboxError as exc:
            stdout = getattr(exc, "stdout", None)
            code = getattr(exc, "exit_code", None)
            if code is not None:
                return (stdout or "") + (getattr(exc, "stderr", "") or ""), int(code)
            raise

    async def helper(self, op: str, **args: Any) -> dict:
        payload = base64.b64encode(json.dumps(args).encode()).decode()
        out, code = await self.run(f"python3 {GUEST_DIR}/helper.py {op} {payload}", timeout=90)
        out = out[:HELPER_OUTPUT_LIMIT]
        try:
            data = json.loads(out)
        except ValueError:
            raise ToolError(f"{op}: the sandbox gave no answer (exit {code})") from None
        if not isinstance(data, dict):
            raise ToolError(f"{op}: the sandbox gave no answer")
        return data


def sandbox_toolset(box_for_call: Callable[[], Awaitable[SessionBox]]) -> List[Any]:
    """The six tools, each awaiting the session's sandbox (created or resumed as the item
    was claimed) before it runs."""

    async def started(name: str) -> SessionBox:
        box = await box_for_call()
        box.calls_in_flight += 1
        if box.on_tool is not None:
            box.on_tool(name)
        return box

    def finished(box: SessionBox) -> None:
        box.calls_in_flight -= 1
        box.last_call_end = time.monotonic()

    @beta_async_tool(name="bash", input_schema=BetaManagedAgentsAgentToolset20260401BashInput)
    async def bash(command: Optional[str] = None, restart: Optional[bool] = None,
                   timeout_ms: Optional[int] = None) -> str:
        """Run a bash command in a persistent shell. State (cwd, env vars) persists across calls."""
        box = await started("bash")
        try:
            state = f"{GUEST_DIR}/shell"
            if restart:
                await box.run(f"rm -rf {state}", timeout=30)
                if not command:
                    return "bash session restarted"
            if not command:
                raise ToolError("bash: command is required")
            timeout = BASH_DEFAULT_TIMEOUT
            if timeout_ms is not None and timeout_ms > 0:
                timeout = min(timeout_ms / 1000.0, timeout)
            script = f"{GUEST_DIR}/cmd-{uuid.uuid4().hex}.sh"
            encoded = base64.b64encode(command.encode()).decode()
            if len(encoded) <= 64 * 1024:
                # One round trip: the command travels base64-encoded on the command line.
                prefix = f"echo {encoded} | base64 -d > {script} && "
            else:
                await box.sandbox.files.write(script, command)
                prefix = ""
            line = (f"{prefix}timeout -k 5 {int(timeout)} bash {GUEST_DIR}/bash.sh {state} {_quote(box.workdir)} "
                    f"{script} {BASH_OUTPUT_LIMIT}")
            out, code = await box.run(line, timeout=timeout + 15)
            out = out[:BASH_OUTPUT_LIMIT + 200]
            if code == 124:
                raise ToolError(f"bash: the command timed out after {int(timeout)}s")
            if code != 0:
                raise ToolError(out or "(no output)")
            return out
        finally:
            finished(box)

    @beta_async_tool(name="read", input_schema=BetaManagedAgentsAgentToolset20260401ReadInput)
    async def read(file_path: str, view_range: Optional[List[int]] = None) -> Any:
        """Read a file rooted at the working directory."""
        box = await started("read")
        try:
            target = box.resolve(file_path)
            if view_range and len(view_range) != 2:
                raise ToolError("read: view_range must be [start_line, end_line]")
            st = await box.stat(target)
            if "error" in st:
                raise ToolError(f"read: {file_path}: {st['error']}")
            if st.get("kind") != "file":
                raise ToolError(f"read: {file_path}: not a regular file")
            size = int(st.get("size") or 0)
            media = BINARY_MEDIA_TYPES.get(posixpath.splitext(target)[1].lower())
            if media is not None:
                if view_range:
                    raise ToolError("read: view_range is not supported for image/PDF files")
                limit = PDF_LIMIT if media == "application/pdf" else IMAGE_LIMIT
                if size > limit:
                    raise ToolError(f"read: {file_path} is {size} bytes, exceeds {limit}-byte limit for image/PDF files.")
                data = await box.sandbox.files.read(target, "bytes")
                encoded = base64.standard_b64encode(bytes(data)[:limit]).decode("ascii")
                kind = "document" if media == "application/pdf" else "image"
                return [{"type": kind, "source": {"type": "base64", "media_type": media, "data": encoded}}]
            if size > READ_LIMIT and not view_range:
                raise ToolError(f"read: {file_path} is {size} bytes, exceeds {READ_LIMIT}-byte limit. "
                                "Use the view_range parameter to read specific line ranges, e.g. view_range: [1, 500].")
            if size > READ_LIMIT:
                start, end = view_range[0], view_range[1]
                cmd = f"sed -n '{max(1, int(start))},{int(end) if int(end) > 0 else '$'}p' -- {_quote(target)} | head -c {READ_LIMIT}"
                out, code = await box.run(cmd, timeout=60)
                if code != 0:
                    raise ToolError(f"read: {file_path}: could not read")
                return out
            text = await box.sandbox.files.read(target)
            if not isinstance(text, str):
                raise ToolError(f"read: {file_path}: not valid UTF-8 text")
            text = text[:READ_LIMIT]
            if not view_range:
                return text
            lines = text.split("\n")
            start = max(0, view_range[0] - 1)
            end = view_range[1] if view_range[1] > 0 else len(lines)
            return "\n".join(lines[start:end])
        except SandboxError as exc:
            raise ToolError(f"read: {file_path}: {_short(exc)}") from None
        finally:
            finished(box)

    @beta_async_tool(name="write", input_schema=BetaManagedAgentsAgentToolset20260401WriteInput)
    async def write(file_path: str, content: str) -> str:
        """Write a file, creating parent directories as needed."""
        box = await started("write")
        try:
            target = box.resolve(file_path)
            if len(content.encode("utf-8")) > WRITE_LIMIT:
                raise ToolError(f"write: the content exceeds the {WRITE_LIMIT}-byte limit")
            await box.sandbox.files.write(target, content)  # the agent makes the parents
            return f"wrote {len(content)} bytes to {file_path}"
        except SandboxError as exc:
            raise ToolError(f"write: {file_path}: {_short(exc)}") from None
        finally:
            finished(box)

    @beta_async_tool(name="edit", input_schema=BetaManagedAgentsAgentToolset20260401EditInput)
    async def edit(file_path: str, old_string: str, new_string: str, replace_all: Optional[bool] = None) -> str:
        """Replace text in a file by exact string match."""
        box = await started("edit")
        try:
            target = box.resolve(file_path)
            st = await box.stat(target)
            if "error" in st:
                raise ToolError(f"edit: {file_path}: {st['error']}")
            if st.get("kind") != "file":
                raise ToolError(f"edit: {file_path}: not a regular file")
            if int(st.get("size") or 0) > EDIT_LIMIT:
                raise ToolError(f"edit: {file_path} is {st['size']} bytes, exceeds {EDIT_LIMIT}-byte limit. "
                                "The edit tool loads the whole file and cannot modify a file this large.")
            text = await box.sandbox.files.read(target)
            if not isinstance(text, str):
                raise ToolError(f"edit: {file_path}: not valid UTF-8 text (cannot edit binary files)")
            count = text.count(old_string)
            if count == 0:
                raise ToolError(f"edit: old_string not found in {file_path}")
            if not replace_all and count > 1:
                raise ToolError(f"edit: old_string appears {count} times in {file_path} (must be unique)")
            updated = text.replace(old_string, new_string) if replace_all else text.replace(old_string, new_string, 1)
            if len(updated.encode("utf-8")) > EDIT_LIMIT:
                raise ToolError(f"edit: the result would exceed the {EDIT_LIMIT}-byte limit")
            await box.sandbox.files.write(target, updated)
            return f"edited {file_path} ({count if replace_all else 1} replacement(s))"
        except SandboxError as exc:
            raise ToolError(f"edit: {file_path}: {_short(exc)}") from None
        finally:
            finished(box)

    @beta_async_tool(name="glob", input_schema=BetaManagedAgentsAgentToolset20260401GlobInput)
    async def glob(pattern: str, path: Optional[str] = None) -> str:
        """List files matching a glob pattern, newest first."""
        box = await started("glob")
        try:
            if pattern.startswith("/"):
                raise ToolError("glob: absolute pattern not permitted; pass a relative pattern (and optionally path)")
            if ".." in pattern.split("/"):
                raise ToolError("glob: '..' is not permitted in the pattern")
            root = box.resolve(path) if path else box.workdir
            data = await box.helper("glob", pattern=pattern, path=root)
            if "error" in data:
                raise ToolError(f"glob: {data['error']}")
            matches = [str(m) for m in (data.get("matches") or [])][:200]
            return "\n".join(matches) if matches else "no matches"
        finally:
            finished(box)

    @beta_async_tool(name="grep", input_schema=BetaManagedAgentsAgentToolset20260401GrepInput)
    async def grep(pattern: str, path: Optional[str] = None) -> str:
        """Search file contents for a regular expression."""
        box = await started("grep")
        try:
            search = box.resolve(path) if path else box.workdir
            data = await box.helper("grep", pattern=pattern, path=search)
            if "error" in data:
                raise ToolError(f"grep: {data['error']}")
            return str(data.get("text") or "no matches")[: 100 * 1024 + 100]
        finally:
            finished(box)

    return [bash, read, write, edit, glob, grep]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _short(exc: Exception) -> str:
    return str(exc)[:500]
