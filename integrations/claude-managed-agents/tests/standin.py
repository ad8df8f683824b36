"""A stand-in for Anthropic's control plane of self-hosted environments, on 127.0.0.1: the
work queue (poll with block_ms and reclaim, ack, heartbeat with its 412, stop, stats) and
the sessions (retrieve, the event history, the event stream as SSE, events sent back),
with the paths, query parameters and JSON shapes that the `anthropic` package (2.17.0)
calls and parses (its `types.beta.environments` and `types.beta.sessions` models).

Each session follows a script: a turn is a list of tool calls; the stand-in emits each
`agent.tool_use` with a `session.status_idle` (`requires_action`), waits for the
`user.tool_result`, then emits the next, and ends the turn with `end_turn` (or terminates
the session). A test double of a paid service: it is not the service."""
from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

_ids = itertools.count(1)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    return f"{prefix}_{int(time.time() * 1000) % 10**9:09d}{next(_ids):05d}"


class WorkItem:
    def __init__(self, env_id: str, session_id: str) -> None:
        self.id = new_id("work")
        self.env_id = env_id
        self.session_id = session_id
        self.state = "queued"
        self.created_at = now_iso()
        self.polled_at: Optional[float] = None
        self.acked_at: Optional[float] = None
        self.stopped_at: Optional[float] = None
        self.stop_force: Optional[bool] = None
        self.last_heartbeat: Optional[str] = None
        self.heartbeats = 0
        self.force_412 = False
        self.token = "sessiontok-" + base64.urlsafe_b64encode(new_id("t").encode()).decode().rstrip("=") + "-x9Qz"
        self.secret = base64.urlsafe_b64encode(json.dumps({"sessions_token": self.token}).encode()).decode().rstrip("=")

    def json(self, with_secret: bool = False) -> Dict[str, Any]:
        return {
            "id": self.id, "type": "work", "environment_id": self.env_id, "created_at": self.created_at,
            "data": {"type": "session", "id": self.session_id}, "metadata": {},
            "state": self.state, "secret": self.secret if with_secret else None,
            "acknowledged_at": now_iso() if self.acked_at else None,
            "latest_heartbeat_at": self.last_heartbeat, "started_at": None, "stop_requested_at": None,
            "stopped_at": now_iso() if self.stopped_at else None,
        }


class Session:
    def __init__(self, env_id: str) -> None:
        self.id = new_id("sesn")
        self.env_id = env_id
        self.status = "idle"
        self.events: List[Dict[str, Any]] = []
        self.turn: List[Dict[str, Any]] = []
        self.terminate_after = False
        self.awaiting: Optional[str] = None
        self.results: Dict[str, Dict[str, Any]] = {}
        self.calls: List[Dict[str, Any]] = []  # every tool_use emitted
        self.turns_done = 0
        self.tokens_seen: set = set()
        self.skills: List[Dict[str, str]] = []  # {"skill_id", "name", "text"}: the agent's skills

    def json(self) -> Dict[str, Any]:
        t = now_iso()
        return {
            "id": self.id, "type": "session", "status": self.status, "environment_id": self.env_id,
            "agent": {"id": "agent_standin", "type": "agent", "name": "stand-in", "version": 1,
                      "skills": [{"type": "custom", "skill_id": k["skill_id"], "version": "latest"} for k in self.skills],
                      "multiagent": None, "tools": [{"type": "agent_toolset_20260401"}], "mcp_servers": [],
                      "model": {"id": "claude-stand-in"}, "system": None, "description": None},
            "resources": [], "metadata": {}, "created_at": t, "updated_at": t, "archived_at": None,
            "outcome_evaluations": [], "stats": {}, "usage": {}, "vault_ids": [], "title": None,
        }


class ControlPlane:
    def __init__(self, env_key: str, ttl_seconds: int = 4) -> None:
        self.env_id = new_id("env")
        self.env_key = env_key
        self.ttl = ttl_seconds
        self.cond = threading.Condition()
        self.work: List[WorkItem] = []
        self.sessions: Dict[str, Session] = {}
        self.requests: List[str] = []  # "METHOD path" of every request
        self.polls = 0
        self.server: Optional[ThreadingHTTPServer] = None
        self.stopping = False

    # -- the test's side -------------------------------------------------------------------
    def create_session(self, calls: List[Dict[str, Any]], terminate_after: bool = False,
                       skills: Optional[List[Dict[str, str]]] = None) -> Session:
        with self.cond:
            s = Session(self.env_id)
            s.skills = list(skills or [])
            self.sessions[s.id] = s
            self._start_turn(s, calls, terminate_after)
            self.work.append(WorkItem(self.env_id, s.id))
            self.cond.notify_all()
            return s

    def follow_up(self, session: Session, calls: List[Dict[str, Any]], terminate_after: bool = False) -> WorkItem:
        """A user message to an idle session: a new turn and a new work item for it."""
        with self.cond:
            self._start_turn(session, calls, terminate_after)
            item = WorkItem(self.env_id, session.id)
            self.work.append(item)
            self.cond.notify_all()
            return item

    def items_for(self, session: Session) -> List[WorkItem]:
        with self.cond:
            return [w for w in self.work if w.session_id == session.id]

    def wait(self, predicate, timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self.cond.wait(min(left, 0.5))

    # -- the agent's script ----------------------------------------------------------------
    def _event(self, s: Session, kind: str, **fields: Any) -> Dict[str, Any]:
        ev = {"id": new_id("sevt"), "type": kind, "processed_at": now_iso(), **fields}
        s.events.append(ev)
        self.cond.notify_all()
        return ev

    def _start_turn(self, s: Session, calls: List[Dict[str, Any]], terminate_after: bool) -> None:
        s.turn = list(calls)
        s.terminate_after = terminate_after
        s.status = "running"
        self._event(s, "user.message", content=[{"type": "text", "text": "go"}])
        self._event(s, "session.status_running")
        self._next_call(s)

    def _next_call(self, s: Session) -> None:
        if s.turn:
            call = s.turn.pop(0)
            ev = self._event(s, "agent.tool_use", name=call["name"], input=call["input"], evaluated_permission="allow")
            s.calls.append(ev)
            s.awaiting = ev["id"]
            s.status = "idle"
            self._event(s, "session.status_idle", stop_reason={"type": "requires_action", "event_ids": [ev["id"]]})
            return
        s.awaiting = None
        s.turns_done += 1
        self._event(s, "agent.message", content=[{"type": "text", "text": "turn done"}])
        if s.terminate_after:
            s.status = "terminated"
            self._event(s, "session.status_terminated")
        else:
            s.status = "idle"
            self._event(s, "session.status_idle", stop_reason={"type": "end_turn"})

    def _receive(self, s: Session, events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        out = []
        for ev in events:
            if not isinstance(ev, dict):
                continue
            stored = self._event(s, str(ev.get("type")), **{k: v for k, v in ev.items() if k != "type"})
            out.append(stored)
            if ev.get("type") == "user.tool_result" and ev.get("tool_use_id") == s.awaiting:
                s.results[s.awaiting] = ev
                s.status = "running"
                self._event(s, "session.status_running")
                self._next_call(s)
        return out

    # -- HTTP ------------------------------------------------------------------------------
    def start(self) -> str:
        plane = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("request-id", new_id("req"))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a poll cut short by a stopping worker)

            def _error(self, status: int, kind: str, message: str, details: Any = None) -> None:
                err: Dict[str, Any] = {"type": kind, "message": message}
                if details is not None:
                    err["details"] = details
                self._send(status, {"type": "error", "error": err})

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                if n > 8 * 1024 * 1024:
                    return None
                raw = self.rfile.read(n) if n else b""
                try:
                    return json.loads(raw or b"{}")
                except ValueError:
                    return None

            def _bearer(self) -> str:
                auth = self.headers.get("Authorization") or ""
                return auth[7:] if auth.startswith("Bearer ") else ""

            def do_GET(self) -> None:  # noqa: N802
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                q = parse_qs(url.query)
                path = url.path
                with plane.cond:
                    plane.requests.append(f"{method} {path}")
                body = self._body() if method == "POST" else None
                token = self._bearer()
                if self.headers.get("x-api-key"):
                    return self._error(401, "authentication_error", "x-api-key is not accepted here")
                m = re.fullmatch(r"/v1/environments/([^/]+)/work/(poll|stats)", path)
                if m and method == "GET":
                    if token != plane.env_key or m.group(1) != plane.env_id:
                        return self._error(401, "authentication_error", "invalid environment key")
                    return self._poll(q) if m.group(2) == "poll" else self._stats()
                m = re.fullmatch(r"/v1/environments/([^/]+)/work/([^/]+)(?:/(ack|heartbeat|stop))?", path)
                if m:
                    item = plane._item(m.group(2))
                    if item is None:
                        return self._error(404, "not_found_error", "no such work item")
                    if token not in (plane.env_key, item.token):
                        return self._error(401, "authentication_error", "invalid credential")
                    return self._work(item, m.group(3), q, body)
                m = re.fullmatch(r"/v1/skills/([^/]+)/versions/([^/]+)(/content)?", path)
                if m and method == "GET":
                    skill = next((k for s in plane.sessions.values() for k in s.skills if k["skill_id"] == m.group(1)), None)
                    if skill is None:
                        return self._error(404, "not_found_error", "no such skill")
                    if m.group(3):
                        return self._skill_archive(skill)
                    return self._send(200, {"id": "skillver_1", "type": "skill_version", "skill_id": skill["skill_id"],
                                            "name": skill["name"], "version": "1", "description": "",
                                            "directory": skill["name"], "created_at": now_iso()})
                m = re.fullmatch(r"/v1/sessions/([^/]+)(/events(/stream)?)?", path)
                if m:
                    s = plane.sessions.get(m.group(1))
                    if s is None:
                        return self._error(404, "not_found_error", "no such session")
                    allowed = {plane.env_key} | {w.token for w in plane.work if w.session_id == s.id}
                    if token not in allowed:
                        return self._error(401, "authentication_error", "invalid credential")
                    with plane.cond:
                        s.tokens_seen.add(token)
                    if m.group(3):
                        return self._stream(s)
                    if m.group(2):
                        if method == "POST":
                            with plane.cond:
                                stored = plane._receive(s, (body or {}).get("events") or [])
                            return self._send(200, {"data": stored})
                        return self._list(s, q)
                    with plane.cond:
                        return self._send(200, s.json())
                return self._error(404, "not_found_error", f"no route {method} {path}")

            def _poll(self, q: Dict[str, List[str]]) -> None:
                block_ms = int((q.get("block_ms") or ["0"])[0])
                if not 1 <= block_ms <= 999:
                    return self._error(400, "invalid_request_error", "block_ms must be 1-999")
                reclaim = int((q.get("reclaim_older_than_ms") or ["5000"])[0]) / 1000.0
                deadline = time.monotonic() + block_ms / 1000.0
                with plane.cond:
                    plane.polls += 1
                    while True:
                        for w in plane.work:
                            if w.state == "starting" and w.acked_at is None and w.polled_at is not None \
                                    and time.monotonic() - w.polled_at > reclaim:
                                w.state = "queued"
                        item = next((w for w in plane.work if w.state == "queued"), None)
                        if item is not None:
                            item.state = "starting"
                            item.polled_at = time.monotonic()
                            plane.cond.notify_all()
                            return self._send(200, item.json(with_secret=True))
                        left = deadline - time.monotonic()
                        if left <= 0 or plane.stopping:
                            return self._send(200, None)
                        plane.cond.wait(left)

            def _skill_archive(self, skill: Dict[str, str]) -> None:
                import io
                import zipfile
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w") as z:
                    z.writestr(f"{skill['name']}/SKILL.md", skill["text"])
                data = buf.getvalue()
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stats(self) -> None:
                with plane.cond:
                    queued = sum(1 for w in plane.work if w.state == "queued")
                    pending = sum(1 for w in plane.work if w.state == "starting")
                return self._send(200, {"type": "work_queue_stats", "depth": queued + pending, "pending": pending,
                                        "oldest_queued_at": None, "workers_polling": None})

            def _work(self, item: WorkItem, action: Optional[str], q: Dict[str, List[str]], body: Any) -> None:
                with plane.cond:
                    if action == "ack":
                        item.acked_at = time.monotonic()
                        plane.cond.notify_all()
                        return self._send(200, item.json())
                    if action == "stop":
                        item.stop_force = bool((body or {}).get("force"))
                        if item.state != "stopped":
                            item.state = "stopped"
                            item.stopped_at = time.monotonic()
                        plane.cond.notify_all()
                        return self._send(200, item.json())
                    if action == "heartbeat":
                        item.heartbeats += 1
                        expected = (q.get("expected_last_heartbeat") or [""])[0]
                        stored = item.last_heartbeat or "NO_HEARTBEAT"
                        lease = {"last_heartbeat": item.last_heartbeat, "lease_extended": False,
                                 "state": item.state, "ttl_seconds": plane.ttl}
                        if item.state in ("stopping", "stopped"):
                            return self._send(200, {"type": "work_heartbeat", "last_heartbeat": item.last_heartbeat or "",
                                                    "lease_extended": False, "state": item.state, "ttl_seconds": plane.ttl})
                        if item.force_412 or expected != stored:
                            return self._error(412, "precondition_failed_error",
                                               "expected_last_heartbeat does not match the stored heartbeat",
                                               {"error_code": "heartbeat_precondition_failed", "current_state": lease})
                        item.last_heartbeat = now_iso()
                        item.state = "active"
                        plane.cond.notify_all()
                        return self._send(200, {"type": "work_heartbeat", "last_heartbeat": item.last_heartbeat,
                                                "lease_extended": True, "state": "active", "ttl_seconds": plane.ttl})
                    return self._send(200, item.json())

            def _list(self, s: Session, q: Dict[str, List[str]]) -> None:
                types = set(q.get("types") or []) | set(q.get("types[]") or [])
                limit = int((q.get("limit") or ["1000"])[0])
                with plane.cond:
                    data = [e for e in s.events if not types or e["type"] in types][:limit]
                return self._send(200, {"data": data, "next_page": None})

            def _stream(self, s: Session) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                with plane.cond:
                    sent = len(s.events)
                try:
                    while True:
                        with plane.cond:
                            if sent >= len(s.events) and not plane.stopping:
                                plane.cond.wait(1.0)
                            batch = s.events[sent:]
                            sent = len(s.events)
                            stop = plane.stopping
                        chunks = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in batch]
                        if not batch:
                            chunks = ["event: ping\ndata: {}\n\n"]
                        self.wfile.write("".join(chunks).encode())
                        self.wfile.flush()
                        if stop or any(e["type"] == "session.status_terminated" for e in batch):
                            return
                except (BrokenPipeError, ConnectionResetError, OSError):
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="standin", daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _item(self, work_id: str) -> Optional[WorkItem]:
        with self.cond:
            return next((w for w in self.work if w.id == work_id), None)

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def tool_result_text(result: Dict[str, Any]) -> str:
    return "".join(b.get("text", "") for b in result.get("content") or [] if isinstance(b, dict))
