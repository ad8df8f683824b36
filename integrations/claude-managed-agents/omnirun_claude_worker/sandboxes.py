"""One OmniRun sandbox per Claude session: created from the template when a session is
first claimed, paused (memory kept) when its turn ends, resumed for the next turn, ended
when the session ends, when the lease is lost, or after the paused retention.

The session a sandbox belongs to is in the sandbox's metadata, so a restarted worker
(or a `spawn.sh` process) finds a paused session's sandbox again."""
from __future__ import annotations

import asyncio
import io
import logging
import os
import tarfile
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from omnirun import AsyncSandbox
from omnirun._http import AsyncHTTPClient
from omnirun._ops import Call
from omnirun._config import resolve_config
from omnirun.errors import RateLimitError, SandboxError, SandboxNotFoundError

from .config import Settings
from .guest import GUEST_DIR
from .tools import SessionBox

log = logging.getLogger("omnirun_claude_worker.sandboxes")

LABEL = "omnirun-claude-worker"
SESSION_KEY = "anthropic-session-id"
LIST_PAGE = 100


def _parse_time(value: Any) -> Optional[float]:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()
    except ValueError:
        return None


class Sandboxes:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._config = resolve_config(settings.omnirun_url, settings.omnirun_key, 120)

    # -- listing -------------------------------------------------------------------------
    async def _list_raw(self, state: str, metadata: Dict[str, str]) -> List[Dict[str, Any]]:
        """The raw list entries (with `pausedAt`), at most a few pages: bounded."""
        client = AsyncHTTPClient(self._config)
        out: List[Dict[str, Any]] = []
        token: Optional[str] = None
        try:
            for _ in range(20):
                params = {"state": state, "limit": str(LIST_PAGE),
                          "metadata": ",".join(f"{k}:{v}" for k, v in metadata.items())}
                if token:
                    params["next_token"] = token
                data, headers = await client.execute(Call("GET", "/sandboxes", params=params, kind="headers"))
                if isinstance(data, list):
                    out.extend(d for d in data if isinstance(d, dict))
                token = headers.get("x-next-token") or None
                if not token:
                    break
        finally:
            await client.aclose()
        return out

    def _labels(self) -> Dict[str, str]:
        return {LABEL: self.settings.worker_label}

    async def running_count(self) -> int:
        """This template's running sandboxes that carry the worker's label."""
        items = await self._list_raw("running", self._labels())
        return sum(1 for d in items if (d.get("templateID") or d.get("templateId")) in (self.settings.template, None, ""))

    async def find_for_session(self, session_id: str) -> Optional[Dict[str, Any]]:
        meta = {**self._labels(), SESSION_KEY: session_id}
        for state in ("paused", "running"):
            items = await self._list_raw(state, meta)
            if items:
                return items[0]
        return None

    # -- lifecycle -----------------------------------------------------------------------
    def _create_options(self, session_id: str, work_id: str) -> Dict[str, Any]:
        s = self.settings
        options: Dict[str, Any] = {
            "timeout": s.sandbox_timeout,
            "metadata": {**self._labels(), SESSION_KEY: session_id, "anthropic-work-id": work_id},
            "api_key": s.omnirun_key, "api_url": s.omnirun_url, "request_timeout": 330,
        }
        if s.allow_domains:
            options["internet"] = True
            options["network"] = {"allowDomains": list(s.allow_domains)}
        return options

    async def acquire(self, session_id: str, work_id: str) -> tuple[SessionBox, str]:
        """The session's sandbox, resumed if it was paused, else a new one. Returns the box
        and how it was had: "resumed", "running" or "created"."""
        found = None
        try:
            found = await self.find_for_session(session_id)
        except SandboxError as exc:
            log.warning("could not look for the session's sandbox session_id=%s error=%s", session_id, exc)
        if found is not None:
            sandbox_id = found.get("sandboxID") or ""
            try:
                sandbox = await AsyncSandbox.connect(sandbox_id, api_key=self.settings.omnirun_key,
                                                     api_url=self.settings.omnirun_url, request_timeout=330)
                how = "running"
                if found.get("state") == "paused":
                    delay = 1.0
                    while True:
                        try:
                            await sandbox.resume()
                            break
                        except RateLimitError as exc:
                            # A resume counts against the account's limit like a create: wait.
                            log.warning("sandbox limit reached; waiting to resume session_id=%s error=%s",
                                        session_id, exc)
                            await asyncio.sleep(delay)
                            delay = min(delay * 2, 15.0)
                    how = "resumed"  # a resume starts the sandbox's timeout again
                else:
                    await sandbox.set_timeout(self.settings.sandbox_timeout)
                box = SessionBox(sandbox, self.settings.workdir)
                log.info("session sandbox %s session_id=%s sandbox_id=%s", how, session_id, sandbox_id)
                return box, how
            except SandboxError as exc:
                log.warning("could not resume the session's sandbox; starting a new one session_id=%s "
                            "sandbox_id=%s error=%s", session_id, sandbox_id, exc)
                await self.kill_id(sandbox_id)
        opts = self._create_options(session_id, work_id)
        delay = 1.0
        while True:
            try:
                sandbox = await AsyncSandbox.create(self.settings.template, **opts)
                break
            except RateLimitError as exc:
                # The account's limit: wait for a slot rather than fail the session.
                log.warning("sandbox limit reached; waiting session_id=%s error=%s", session_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
        box = SessionBox(sandbox, self.settings.workdir)
        try:
            await box.install()
        except BaseException:
            await self.kill(box)
            raise
        log.info("session sandbox created session_id=%s sandbox_id=%s template=%s", session_id,
                 sandbox.sandbox_id, self.settings.template)
        return box, "created"

    async def pause(self, box: SessionBox) -> bool:
        try:
            await asyncio.wait_for(box.sandbox.pause(), timeout=self.settings.pause_timeout)
            log.info("session sandbox paused sandbox_id=%s", box.sandbox_id)
            return True
        except (SandboxError, asyncio.TimeoutError) as exc:
            log.warning("pause failed; ending the sandbox sandbox_id=%s error=%r", box.sandbox_id, exc)
            await self.kill(box)
            return False
        finally:
            await box.sandbox.close()

    async def kill(self, box: SessionBox) -> None:
        await self.kill_id(box.sandbox_id)
        try:
            await box.sandbox.close()
        except Exception:  # noqa: BLE001 - closing connections only
            pass

    async def kill_id(self, sandbox_id: str) -> None:
        if not sandbox_id:
            return
        client = AsyncHTTPClient(self._config)
        try:
            await client.execute(Call("DELETE", f"/sandboxes/{sandbox_id}", kind="ignore"))
            log.info("session sandbox ended sandbox_id=%s", sandbox_id)
        except SandboxNotFoundError:
            pass
        except SandboxError as exc:
            if exc.status != 404:
                log.warning("could not end sandbox sandbox_id=%s error=%s", sandbox_id, exc)
        finally:
            await client.aclose()

    async def keep_alive(self, box: SessionBox) -> None:
        """Pushes the sandbox's timeout forward while its session is served."""
        while True:
            await asyncio.sleep(max(5.0, self.settings.sandbox_timeout / 3))
            try:
                await box.sandbox.set_timeout(self.settings.sandbox_timeout)
            except SandboxError:
                pass

    async def reap_paused(self) -> int:
        """Ends this worker's paused sandboxes older than the retention."""
        try:
            items = await self._list_raw("paused", self._labels())
        except SandboxError as exc:
            log.warning("could not list paused sandboxes error=%s", exc)
            return 0
        now = time.time()
        ended = 0
        for item in items:
            paused_at = _parse_time(item.get("pausedAt"))
            if paused_at is not None and now - paused_at >= self.settings.paused_retention:
                log.info("paused session past its retention; ending sandbox_id=%s session_id=%s",
                         item.get("sandboxID"), (item.get("metadata") or {}).get(SESSION_KEY))
                await self.kill_id(str(item.get("sandboxID") or ""))
                ended += 1
        return ended

    async def copy_outputs(self, box: SessionBox, session_id: str) -> Optional[str]:
        """Copies the session's working directory (bounded) to <outputs>/<session id>/."""
        dest_root = self.settings.outputs_dir
        if not dest_root:
            return None
        safe = "".join(c for c in session_id if c.isalnum() or c in "_-")[:128] or "session"
        dest = os.path.join(dest_root, safe)
        archive = f"{GUEST_DIR}/outputs.tgz"
        limit = self.settings.outputs_max_bytes
        try:
            packed = await box.helper("pack", path=box.workdir, dest=archive, limit=limit)
            if "error" in packed:
                log.warning("outputs not copied session_id=%s: %s", session_id, packed["error"])
                return None
            if int(packed.get("size") or 0) > limit:
                log.warning("outputs not copied session_id=%s: archive too large", session_id)
                return None
            data = bytes(await box.sandbox.files.read(archive, "bytes"))[: limit + 1]
            if len(data) > limit:
                return None
            os.makedirs(dest, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                total = 0
                for member in tar.getmembers():
                    total += max(0, member.size)
                    if total > limit:
                        raise ValueError("outputs exceed the limit once unpacked")
                tar.extractall(dest, filter="data")
            log.info("outputs copied session_id=%s dest=%s files=%s", session_id, dest, packed.get("files"))
            return dest
        except (SandboxError, OSError, ValueError, tarfile.TarError) as exc:
            log.warning("outputs not copied session_id=%s error=%s", session_id, exc)
            return None
