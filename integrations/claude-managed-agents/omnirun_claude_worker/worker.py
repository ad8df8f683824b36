"""The worker: claims work items of a self-hosted environment with the `anthropic`
package's poller, and serves each session with the package's own per-item machinery
(the lease and its heartbeats, the session's event stream, the tool results posted
back), with tools that run in the session's OmniRun sandbox.

Per item: the session's sandbox is resumed (a follow-up turn) or created as the item is
claimed; the session's tool calls run in it; when the session goes idle the sandbox is
paused, when it ends or the lease is lost (412) it is ended. At the concurrency cap the
poller is not asked for more work, so items stay queued. SIGTERM stops claiming and
drains."""
from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import shutil
import signal
import tarfile
import tempfile
import time
from contextlib import suppress
from typing import Any, Dict, List, Optional

import httpx2
from anthropic import AsyncAnthropic
from anthropic.lib.environments import EnvironmentWorker
from anthropic.lib.environments import _poller as poller
from anthropic.lib.environments._worker import WorkItemRun
from pydantic import SecretStr

from .config import REDACT, Settings
from .metrics import Metrics, serve_metrics
from .sandboxes import Sandboxes
from .tools import SessionBox, sandbox_toolset

log = logging.getLogger("omnirun_claude_worker")

CONTROL_PLANE_RESPONSE_LIMIT = 64 * 1024 * 1024
SKILLS_LIMIT = 64 * 1024 * 1024


# -- bounded reads from the control plane ---------------------------------------------------
class _BoundedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, limit: int, request: httpx2.Request) -> None:
        self._inner, self._limit, self._request = inner, limit, request

    async def __aiter__(self):  # type: ignore[override]
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise httpx2.ReadError(f"response larger than {self._limit} bytes", request=self._request)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class BoundedTransport(httpx2.AsyncBaseTransport):
    """Cuts any answer of the control plane past `limit` bytes (an event stream too: the
    package's runner reconnects)."""

    def __init__(self, limit: int = CONTROL_PLANE_RESPONSE_LIMIT) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > self._limit:
            await response.aclose()
            raise httpx2.ReadError(f"response larger than {self._limit} bytes", request=request)
        response.stream = _BoundedStream(response.stream, self._limit, request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def sessions_token(secret: Optional[str]) -> Optional[str]:
    """The per-item sessions token in a work item's secret (URL-safe base64 of JSON)."""
    if not secret or len(secret) > 64 * 1024:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)))
    except (ValueError, TypeError):
        return None
    token = payload.get("sessions_token") if isinstance(payload, dict) else None
    return token if isinstance(token, str) and token else None


class Worker:
    def __init__(self, settings: Settings, *, mode: str = "run") -> None:
        self.settings = settings
        self.mode = mode
        self.metrics = Metrics()
        self.sandboxes = Sandboxes(settings)
        self.stop_event = asyncio.Event()
        self.inflight: Dict[str, asyncio.Task] = {}
        self._http = httpx2.AsyncClient(transport=BoundedTransport(), timeout=httpx2.Timeout(600.0, connect=10.0))
        self.client = AsyncAnthropic(api_key=None, auth_token=settings.environment_key or None,
                                     base_url=settings.base_url, http_client=self._http, max_retries=2)

    # -- the cap ----------------------------------------------------------------------------
    async def used_slots(self) -> int:
        # A handle-item process waits for a slot for its own item: only the sandboxes count.
        used = len(self.inflight) if self.mode == "run" else 0
        try:
            used = max(used, await self.sandboxes.running_count())
        except Exception as exc:  # noqa: BLE001 - the local count still holds
            log.debug("could not count running sandboxes error=%r", exc)
        return used

    async def wait_for_slot(self) -> bool:
        """Returns True once a session may start, False when the worker is stopping."""
        waited = False
        last_stats = 0.0
        while not self.stop_event.is_set():
            used = await self.used_slots()
            if used < self.settings.max_sessions:
                self.metrics.set("at_cap", 0)
                self.metrics.set("deferred", 0)
                return True
            if not waited:
                waited = True
                self.metrics.inc("deferred_total")
                log.info("at the concurrency cap (%d/%d running %s sandboxes); not claiming work",
                         used, self.settings.max_sessions, self.settings.template)
            self.metrics.set("at_cap", 1)
            if self.mode == "run" and time.monotonic() - last_stats > 5:
                last_stats = time.monotonic()
                await self._record_queue_depth()
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=1.0)
        return False

    async def _record_queue_depth(self) -> None:
        try:
            stats = await self.client.beta.environments.work.stats(self.settings.environment_id, timeout=10)
            self.metrics.set("deferred", int(getattr(stats, "depth", 0) or 0))
        except Exception as exc:  # noqa: BLE001 - metrics only
            log.debug("queue stats unavailable error=%r", exc)

    # -- one item ---------------------------------------------------------------------------
    async def serve_item(self, *, work_id: str, environment_id: str, session_id: str, secret: Optional[str],
                         claimed_at: float) -> str:
        """Serves one claimed item; returns what became of its sandbox: "paused", "ended",
        "lost" (the lease), "failed" or "skipped"."""
        REDACT.add(secret, sessions_token(secret))
        self.metrics.inc("claimed_total")
        self.metrics.add("running", 1)
        first_tool: Dict[str, float] = {}

        def on_tool(name: str) -> None:
            if "t" not in first_tool:
                first_tool["t"] = time.monotonic()
                ms = (first_tool["t"] - claimed_at) * 1000
                self.metrics.observe("claim_to_first_tool_ms", ms)
                log.info("figure claim_to_first_tool_ms=%.0f session_id=%s tool=%s", ms, session_id, name)

        async def acquire() -> SessionBox:
            if self.mode == "item" and not await self.wait_for_slot():
                raise RuntimeError("the worker is stopping")
            t0 = time.monotonic()
            box, how = await self.sandboxes.acquire(session_id, work_id)
            ms = (time.monotonic() - t0) * 1000
            box.on_tool = on_tool
            self.metrics.inc(f"sandboxes_{how}_total")
            self.metrics.observe(f"acquire_{how}_ms", ms)
            log.info("figure acquire_ms=%.0f how=%s session_id=%s sandbox_id=%s", ms, how, session_id, box.sandbox_id)
            return box

        acquire_task = asyncio.ensure_future(acquire())
        keep_alive: Optional[asyncio.Task] = None
        skills_done: Dict[str, bool] = {}
        host_workdir = tempfile.mkdtemp(prefix="omnirun-claude-")

        async def box_for_call(ctx: Any) -> SessionBox:
            nonlocal keep_alive
            box = await asyncio.shield(acquire_task)
            if keep_alive is None:
                keep_alive = asyncio.ensure_future(self.sandboxes.keep_alive(box))
            if not skills_done.get("done"):
                skills_done["done"] = True
                await self._upload_skills(ctx, box)
            return box

        def tools_for(ctx: Any) -> List[Any]:
            return sandbox_toolset(lambda: box_for_call(ctx))

        env_worker = EnvironmentWorker(
            self.client, environment_id=environment_id, environment_key=self.settings.environment_key or None,
            tools=tools_for, workdir=host_workdir, max_idle=self.settings.idle_seconds, memory_sync_interval=None)
        run = WorkItemRun(worker=env_worker, work_id=work_id, environment_id=environment_id, session_id=session_id,
                          secret=SecretStr(secret or ""), environment_key=SecretStr(self.settings.environment_key or ""))
        outcome = "failed"
        error: Optional[BaseException] = None
        cancelled = False
        try:
            await run.handle()
        except asyncio.CancelledError as exc:
            cancelled, error = True, exc
        except Exception as exc:  # noqa: BLE001 - logged, then the sandbox is dealt with
            error = exc
        after = asyncio.ensure_future(self._after_item(
            run, acquire_task, session_id, secret, error=error, cancelled=cancelled))
        try:
            while not after.done():
                try:
                    await asyncio.shield(after)
                except asyncio.CancelledError:
                    cancelled = True  # the sandbox is still paused or ended before this returns
            outcome = after.result()
        finally:
            if keep_alive is not None:
                keep_alive.cancel()
            shutil.rmtree(host_workdir, ignore_errors=True)
            self.metrics.add("running", -1)
            self.metrics.inc(f"items_{outcome}_total")
            if outcome == "failed":
                self.metrics.inc("failed_total")
        log.info("work item done work_id=%s session_id=%s sandbox=%s", work_id, session_id, outcome)
        if cancelled:
            raise asyncio.CancelledError()
        return outcome

    async def _after_item(self, run: WorkItemRun, acquire_task: "asyncio.Future[SessionBox]", session_id: str,
                          secret: Optional[str], *, error: Optional[BaseException], cancelled: bool) -> str:
        box: Optional[SessionBox] = None
        if acquire_task.done():
            if acquire_task.cancelled() or acquire_task.exception() is not None:
                problem = "cancelled" if acquire_task.cancelled() else repr(acquire_task.exception())
                log.error("the session's sandbox could not be had session_id=%s error=%s", session_id,
                          REDACT.scrub(problem)[:500])
                return "lost" if run.lease.lost else "failed"
            box = acquire_task.result()
        else:
            acquire_task.cancel()
            try:
                box = await acquire_task
            except BaseException:  # noqa: BLE001 - it was cancelled or failed
                box = None
            if box is not None:
                await self.sandboxes.kill(box)
                return "lost" if run.lease.lost else ("skipped" if error is None else "failed")
        if run.lease.lost:
            self.metrics.inc("lease_lost_total")
            log.warning("lease lost; ending the session's sandbox session_id=%s", session_id)
            if box is not None:
                await self.sandboxes.kill(box)
            return "lost"
        if error is not None and not cancelled:
            log.error("work item failed session_id=%s error=%s", session_id, REDACT.scrub(repr(error)))
            if box is not None:
                await self.sandboxes.kill(box)
            return "failed"
        if box is None:
            return "skipped" if not cancelled else "failed"
        status = "unknown" if cancelled else await self._session_status(session_id, secret)
        await self.sandboxes.copy_outputs(box, session_id)
        if status in ("terminated", "gone"):
            await self.sandboxes.kill(box)
            return "ended"
        if await self.sandboxes.pause(box):
            self.metrics.inc("paused_total")
            return "paused"
        return "ended"

    async def _session_status(self, session_id: str, secret: Optional[str]) -> str:
        token = sessions_token(secret) or self.settings.environment_key
        if not token:
            return "unknown"
        client = self.client.copy(auth_token=token)
        try:
            session = await client.beta.sessions.retrieve(session_id, timeout=15)
            return str(getattr(session, "status", "unknown"))
        except Exception as exc:  # noqa: BLE001 - treated as "keep it paused"
            if getattr(exc, "status_code", None) == 404:
                return "gone"
            log.warning("could not read the session's status session_id=%s error=%s", session_id,
                        REDACT.scrub(str(exc))[:300])
            return "unknown"

    async def _upload_skills(self, ctx: Any, box: SessionBox) -> None:
        """The package downloads the session's skills next to the host workdir; they go
        to <workdir>/skills/<name>/ in the sandbox."""
        dirs = [d for d in (getattr(ctx, "_skill_dirs", None) or []) if os.path.isdir(d)]
        if not dirs:
            return
        buf = io.BytesIO()
        total = 0
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for d in dirs:
                for dirpath, _dirs, files in os.walk(d):
                    for name in files:
                        full = os.path.join(dirpath, name)
                        if os.path.islink(full):
                            continue
                        total += os.path.getsize(full)
                        if total > SKILLS_LIMIT:
                            log.warning("skills larger than %d bytes; not copied", SKILLS_LIMIT)
                            return
                        tar.add(full, arcname=os.path.relpath(full, os.path.dirname(d)), recursive=False)
        from .guest import GUEST_DIR
        await box.sandbox.files.write(f"{GUEST_DIR}/skills.tgz", buf.getvalue())
        await box.run(f"mkdir -p {box.workdir}/skills && tar -xzf {GUEST_DIR}/skills.tgz -C {box.workdir}/skills",
                      timeout=120)

    # -- the poll loop ----------------------------------------------------------------------
    async def _next_work(self, work: Any, worker_id: str, delays: Any) -> Any:
        """The next item a poll returns, not acknowledged; None once the worker stops."""
        while not self.stop_event.is_set():
            try:
                item = await work.poll(
                    self.settings.environment_id, block_ms=poller.POLL_BLOCK_MS, anthropic_worker_id=worker_id)
            except poller.TRANSIENT_ERRORS as exc:
                await self._pause(delays.after_failed_poll(exc))  # a permanent error raises here
                continue
            if item is None:
                await self._pause(delays.after_empty_poll())
                continue
            return item
        return None

    async def _pause(self, seconds: float) -> None:
        """Sleeps, unless the worker stops first."""
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), timeout=seconds)

    async def run(self) -> int:
        s = self.settings
        if not s.environment_id or not s.environment_key:
            log.error("ANTHROPIC_ENVIRONMENT_ID and ANTHROPIC_ENVIRONMENT_KEY are required")
            return 2
        if not s.omnirun_key:
            log.error("OMNIRUN_API_KEY is required")
            return 2
        self._install_signals()
        metrics_server = serve_metrics(self.metrics, s.metrics_host, s.metrics_port) if s.metrics_port else None
        reaper = asyncio.ensure_future(self._reap_forever())
        log.info("worker started environment_id=%s template=%s cap=%d omnirun=%s", s.environment_id, s.template,
                 s.max_sessions, s.omnirun_url)
        # The package's own poller acknowledges an item as soon as a poll returns it; this
        # loop polls and acknowledges itself, so that an item a poll returns after SIGTERM
        # is never acknowledged (the queue hands it out again).
        work = poller.rejecting_non_json(self.client.beta.environments.work)
        worker_id = poller._default_worker_id()
        delays = poller.PollDelays(s.environment_id)
        try:
            while not self.stop_event.is_set():
                if not await self.wait_for_slot():
                    break
                next_item = asyncio.ensure_future(self._next_work(work, worker_id, delays))
                stopping = asyncio.ensure_future(self.stop_event.wait())
                done, _ = await asyncio.wait({next_item, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if next_item not in done:
                    next_item.cancel()
                    with suppress(BaseException):
                        await next_item
                    break
                item = next_item.result()
                # A signal that came while the poll was answered is handled first.
                await asyncio.sleep(0)
                if item is None or self.stop_event.is_set():
                    if item is not None:
                        log.info("not claiming work item work_id=%s: draining", item.id)
                    break
                try:
                    await work.ack(item.id, environment_id=item.environment_id, timeout=poller.WORK_REQUEST_TIMEOUT)
                except poller.TRANSIENT_ERRORS as exc:
                    log.warning("ack failed work_id=%s error=%s", item.id, REDACT.scrub(str(exc))[:300])
                    await self._pause(delays.after_failure())
                    continue
                delays.reset()
                log.info("claimed work work_id=%s work_type=%s", item.id, getattr(item.data, "type", None))
                claimed_at = time.monotonic()
                REDACT.add(item.secret, sessions_token(item.secret))
                log.debug("claimed work item %r", item)  # its secret is redacted like every secret
                work_type = getattr(item.data, "type", None)
                if work_type != "session":
                    log.info("skipping a work item that is not for a session work_id=%s type=%s", item.id, work_type)
                    continue
                task = asyncio.ensure_future(self.serve_item(
                    work_id=item.id, environment_id=item.environment_id, session_id=item.data.id,
                    secret=item.secret, claimed_at=claimed_at))
                self.inflight[item.id] = task
                task.add_done_callback(lambda _t, wid=item.id: self.inflight.pop(wid, None))
        except Exception as exc:  # noqa: BLE001 - e.g. a permanent refusal of the environment key
            log.error("polling stopped error=%s", REDACT.scrub(str(exc))[:500])
            self.stop_event.set()
            await self._drain()
            reaper.cancel()
            return 1
        log.info("stopped claiming work; draining %d session(s) (up to %.0fs)", len(self.inflight), s.drain_seconds)
        await self._drain()
        reaper.cancel()
        if metrics_server is not None:
            metrics_server.shutdown()
        await self._http.aclose()
        log.info("worker stopped")
        return 0

    async def _drain(self) -> None:
        tasks = list(self.inflight.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.settings.drain_seconds)
        if pending:
            log.warning("drain time is up; stopping %d session(s) and pausing their sandboxes", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=self.settings.pause_timeout + 15)

    async def _reap_forever(self) -> None:
        interval = max(5.0, min(60.0, self.settings.paused_retention / 4))
        while True:
            with suppress(Exception):
                ended = await self.sandboxes.reap_paused()
                if ended:
                    self.metrics.inc("retention_ended_total", ended)
            await asyncio.sleep(interval)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        if not self.stop_event.is_set():
            log.info("received %s; no new work will be claimed", signal.Signals(sig).name)
        self.stop_event.set()

    # -- one already-claimed item (spawn.sh) -----------------------------------------------
    async def handle_one(self, *, work_id: str, session_id: str, secret: Optional[str]) -> int:
        s = self.settings
        if not (work_id and session_id and s.environment_id):
            log.error("ANTHROPIC_WORK_ID, ANTHROPIC_SESSION_ID and ANTHROPIC_ENVIRONMENT_ID are required")
            return 2
        if not s.omnirun_key:
            log.error("OMNIRUN_API_KEY is required")
            return 2
        if not secret and not s.environment_key:
            log.error("neither a work secret nor ANTHROPIC_ENVIRONMENT_KEY was given")
            return 2
        self._install_signals()
        with suppress(Exception):
            await self.sandboxes.reap_paused()
        task = asyncio.ensure_future(self.serve_item(work_id=work_id, environment_id=s.environment_id,
                                                     session_id=session_id, secret=secret,
                                                     claimed_at=time.monotonic()))
        self.inflight[work_id] = task
        stopping = asyncio.ensure_future(self.stop_event.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            log.info("draining the session (up to %.0fs)", s.drain_seconds)
            await self._drain()
        stopping.cancel()
        await self._http.aclose()
        if task.cancelled():
            return 0
        outcome = task.result() if task.exception() is None else "failed"
        return 1 if outcome == "failed" else 0
