"""The worker end to end: the real `anthropic` package (in the worker and in a stand-in for
`ant`'s poller) against a stand-in of Anthropic's control plane on 127.0.0.1, the real
worker process, and a real OmniRun server with real sandboxes.

Needs OMNIRUN_API_URL and OMNIRUN_API_KEY (scripts/test-sdks.sh sets them);
OMNIRUN_CLAUDE_TEST_TEMPLATE (default playground)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from standin import ControlPlane, Session, WorkItem, tool_result_text  # noqa: E402

from omnirun import Sandbox  # noqa: E402
from omnirun.errors import SandboxError  # noqa: E402

API_URL = os.environ.get("OMNIRUN_API_URL", "")
API_KEY = os.environ.get("OMNIRUN_API_KEY", "")
TEMPLATE = os.environ.get("OMNIRUN_CLAUDE_TEST_TEMPLATE", "playground")
SPAWN = HERE.parent / "spawn.sh"
LOGS = Path(os.environ.get("OMNIRUN_CLAUDE_TEST_LOGS") or "/tmp/omnirun-claude-test-logs")
LOGS.mkdir(parents=True, exist_ok=True)
WORKDIR = "/home/user/workspace"
ENV_KEY = "sk-ant-envkey-" + os.urandom(12).hex()
SECRETS: List[str] = [ENV_KEY, API_KEY]  # every item's secret and token join as they are made
LOG_FILES: List[Path] = []

pytestmark = pytest.mark.skipif(not (API_URL and API_KEY), reason="needs OMNIRUN_API_URL and OMNIRUN_API_KEY")


def bash(command: str) -> Dict[str, Any]:
    return {"name": "bash", "input": {"command": command}}


def read(path: str) -> Dict[str, Any]:
    return {"name": "read", "input": {"file_path": path}}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)


def results(s: Session) -> List[tuple]:
    """(tool name, is_error, text) of every answered call, in order."""
    out = []
    for call in s.calls:
        r = s.results.get(call["id"])
        if r is not None:
            out.append((call["name"], bool(r.get("is_error")), tool_result_text(r)))
    return out


def session_sandboxes(session_id: str) -> Dict[str, List[str]]:
    meta = {"omnirun-claude-worker": "1", "anthropic-session-id": session_id}
    found: Dict[str, List[str]] = {}
    for state in ("running", "paused"):
        found[state] = [s.sandbox_id for s in Sandbox.list(api_url=API_URL, api_key=API_KEY, state=state, metadata=meta)]
    return found


def guest_file_exists(sandbox_id: str, path: str) -> bool:
    try:
        sb = Sandbox.connect(sandbox_id, api_url=API_URL, api_key=API_KEY)
        try:
            return sb.files.exists(path)
        finally:
            sb.close()
    except SandboxError:
        return False


def track(item: WorkItem) -> WorkItem:
    SECRETS.extend([item.secret, item.token])
    return item


class WorkerProcess:
    def __init__(self, cp: ControlPlane, url: str, name: str, *extra: str, env: Optional[Dict[str, str]] = None) -> None:
        self.log = LOGS / f"worker-{name}.log"
        LOG_FILES.append(self.log)
        self.metrics_port = free_port()
        full_env = base_env(cp, url)
        full_env.update(env or {})
        cmd = [sys.executable, "-m", "omnirun_claude_worker", "run", "--template", TEMPLATE, "--idle-seconds", "1",
               "--metrics-port", str(self.metrics_port), "--log-level", "debug", "--paused-retention", "600", *extra]
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def metrics(self) -> Dict[str, float]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                text = r.read(1 << 20).decode()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name.replace("omnirun_claude_worker_", "")] = float(value)
        return out

    def text(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._out.close()


def base_env(cp: ControlPlane, url: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update({"ANTHROPIC_BASE_URL": url, "ANTHROPIC_ENVIRONMENT_ID": cp.env_id,
                "ANTHROPIC_ENVIRONMENT_KEY": ENV_KEY, "OMNIRUN_API_URL": API_URL, "OMNIRUN_API_KEY": API_KEY})
    return env


@pytest.fixture
def plane():
    cp = ControlPlane(ENV_KEY, ttl_seconds=4)
    url = cp.start()
    yield cp, url
    cp.stop()
    # Nothing of a test outlives it.
    for state in ("running", "paused"):
        for sb in Sandbox.list(api_url=API_URL, api_key=API_KEY, state=state, metadata={"omnirun-claude-worker": "1"}):
            try:
                Sandbox.connect(sb.sandbox_id, api_url=API_URL, api_key=API_KEY).kill()
            except SandboxError:
                pass


def test_session_runs_in_a_sandbox_and_its_next_turn_resumes_it(plane, tmp_path):
    cp, url = plane
    outputs = tmp_path / "outputs"
    worker = WorkerProcess(cp, url, "turns", "--max-sessions", "2", "--outputs-dir", str(outputs))
    try:
        s = cp.create_session([
            bash('mkdir -p notes && echo "hello $((6*7))" > notes/a.txt && cd notes && export GREETING=kept && echo wrote'),
            read("notes/a.txt"),
            read("skills/greet/SKILL.md"),
        ], skills=[{"skill_id": "skill_greet", "name": "greet", "text": "say hello\n"}])
        first = track(cp.items_for(s)[0])
        cp.wait(lambda: s.turns_done >= 1, 300, "the first turn's two tool calls")
        assert results(s) == [("bash", False, "wrote\n"), ("read", False, "hello 42\n"),
                              ("read", False, "say hello\n")]  # the agent's skill, in the sandbox
        # The session's calls used the item's sessions token, not the environment key.
        assert first.token in s.tokens_seen
        # Idle: the item is stopped and the sandbox paused (memory kept), not ended.
        cp.wait(lambda: first.state == "stopped", 60, "the first item to stop")
        paused = wait_for(lambda: session_sandboxes(s.id)["paused"], 60, "the session's sandbox to be paused")
        assert len(paused) == 1 and session_sandboxes(s.id)["running"] == []
        # Outputs copied back from the working directory.
        copied = wait_for(lambda: (outputs / s.id / "notes" / "a.txt").exists(), 30, "the outputs on the host")
        assert copied and (outputs / s.id / "notes" / "a.txt").read_text() == "hello 42\n"

        # A follow-up turn of the same session: a new work item, the same (resumed) sandbox;
        # the file, the shell's directory and its exported variable are still there.
        # (No ANTHROPIC_* variable of the worker in the sandbox: only the two the template sets
        # for OmniRun's own LLM proxy.)
        track(cp.follow_up(s, [bash("cat a.txt; echo cwd=$(pwd) greeting=$GREETING; env | grep '^ANTHROPIC_' | cut -d= -f1 "
                                    "| grep -v -x -e ANTHROPIC_BASE_URL -e ANTHROPIC_AUTH_TOKEN | wc -l")],
                           terminate_after=True))
        cp.wait(lambda: s.turns_done >= 2, 300, "the second turn")
        name, is_error, text = results(s)[3]
        assert not is_error, text
        assert text.splitlines() == ["hello 42", f"cwd={WORKDIR}/notes greeting=kept", "0"]
        log = worker.text()
        assert f"session sandbox resumed session_id={s.id} sandbox_id={paused[0]}" in log
        assert log.count(f"session sandbox created session_id={s.id}") == 1
        # The session ended: its sandbox is ended, nothing is kept.
        wait_for(lambda: session_sandboxes(s.id) == {"running": [], "paused": []}, 60, "the sandbox to end")
        # The worker counts the session as running until its task has wound down, which may be
        # a moment after the sandbox's end is visible.
        m = wait_for(lambda: (lambda m: m if m.get("running") == 0 else None)(worker.metrics()), 30, "no session running")
        assert m.get("claimed_total") == 2 and m.get("sandboxes_resumed_total") == 1 and m.get("failed_total") == 0
    finally:
        assert worker.stop() == 0


def test_lease_lost_ends_the_sandbox(plane):
    cp, url = plane
    worker = WorkerProcess(cp, url, "lease")
    try:
        s = cp.create_session([bash("touch /tmp/started; sleep 120; echo never")])
        item = track(cp.items_for(s)[0])
        box = wait_for(lambda: session_sandboxes(s.id)["running"], 180, "the session's sandbox")[0]
        wait_for(lambda: guest_file_exists(box, "/tmp/started"), 120, "the tool call to run in the sandbox")
        with cp.cond:
            item.force_412 = True  # another worker holds the lease now
        wait_for(lambda: session_sandboxes(s.id) == {"running": [], "paused": []}, 60, "the sandbox to be ended")
        assert results(s) == []  # nothing was posted for the cut call
        assert item.stop_force is None  # a lost lease is not stopped: someone else may hold it
        assert wait_for(lambda: worker.metrics().get("lease_lost_total") == 1, 30, "lease_lost_total")
        assert "lease lost" in worker.text()
    finally:
        assert worker.stop() == 0


def test_at_the_cap_work_stays_queued_until_a_slot_frees(plane):
    cp, url = plane
    worker = WorkerProcess(cp, url, "cap", "--max-sessions", "1")
    try:
        a = cp.create_session([bash("sleep 8; echo a-done")])
        item_a = track(cp.items_for(a)[0])
        cp.wait(lambda: item_a.acked_at is not None, 60, "the first item to be claimed")
        b = cp.create_session([bash("echo b-done")])
        item_b = track(cp.items_for(b)[0])
        wait_for(lambda: worker.metrics().get("at_cap") == 1, 120, "the worker to be at its cap")
        time.sleep(3)
        with cp.cond:
            assert item_b.state == "queued" and item_b.polled_at is None, "claimed past the cap"
            assert a.turns_done == 0
        cp.wait(lambda: b.turns_done >= 1, 300, "the second session once a slot freed")
        assert results(a) == [("bash", False, "a-done\n")]
        assert results(b) == [("bash", False, "b-done\n")]
        assert item_a.stopped_at is not None and item_b.polled_at > item_a.stopped_at
        m = worker.metrics()
        assert m.get("deferred_total", 0) >= 1 and m.get("claimed_total") == 2
    finally:
        assert worker.stop() == 0


def test_sigterm_drains_in_flight_sessions_and_claims_nothing_more(plane):
    cp, url = plane
    worker = WorkerProcess(cp, url, "drain", "--drain-seconds", "120")
    try:
        c = cp.create_session([bash("touch /tmp/started; sleep 6; echo drained-ok")])
        item_c = track(cp.items_for(c)[0])
        box = wait_for(lambda: session_sandboxes(c.id)["running"], 180, "the session's sandbox")[0]
        wait_for(lambda: guest_file_exists(box, "/tmp/started"), 120, "the tool call to run")
        worker.proc.send_signal(signal.SIGTERM)
        d = cp.create_session([bash("echo d")])
        item_d = track(cp.items_for(d)[0])
        assert worker.proc.wait(150) == 0
        assert results(c) == [("bash", False, "drained-ok\n")]
        assert item_c.state == "stopped"
        with cp.cond:
            # Not claimed: never acknowledged nor heartbeated. (A long poll that was in flight
            # as the signal came may have taken it; unacknowledged, the queue hands it out again.)
            assert item_d.acked_at is None and item_d.heartbeats == 0
            assert item_d.state == "queued" or (item_d.state == "starting" and item_d.polled_at is not None)
        assert d.turns_done == 0 and results(d) == []
        assert session_sandboxes(c.id)["running"] == [] and session_sandboxes(d.id)["running"] == []
        assert "received SIGTERM" in worker.text()
    finally:
        worker.stop()


def test_anthropic_api_key_is_refused(plane, tmp_path):
    cp, url = plane
    env = base_env(cp, url)
    env["ANTHROPIC_API_KEY"] = "sk-ant-api03-refuse-me"
    p = subprocess.run([sys.executable, "-m", "omnirun_claude_worker", "run", "--template", TEMPLATE], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "refusing to start: ANTHROPIC_API_KEY is set" in p.stderr
    assert "sk-ant-api03-refuse-me" not in p.stderr + p.stdout
    env.update({"ANTHROPIC_WORK_ID": "work_x", "ANTHROPIC_SESSION_ID": "sesn_x", "OMNIRUN_CLAUDE_PYTHON": sys.executable})
    p = subprocess.run(["bash", str(SPAWN)], env=env, capture_output=True, text=True, timeout=60, input="{}")
    assert p.returncode == 78
    assert "refusing to start: ANTHROPIC_API_KEY is set" in p.stderr
    assert cp.polls == 0 and not any(r.startswith("POST /v1/environments") for r in cp.requests)


def _ant_claims(cp: ControlPlane, url: str):
    """What `ant beta:worker poll` does before it runs the script: poll and ack, with the
    real package's poller."""
    from anthropic import Anthropic
    from anthropic.lib.environments import iter_work
    client = Anthropic(api_key=None, auth_token=ENV_KEY, base_url=url)
    items = iter_work(client.beta.environments.work, environment_id=cp.env_id, auto_stop=False)
    try:
        return next(items)
    finally:
        items.close()


def _run_spawn(cp: ControlPlane, url: str, item: Any, log: Path) -> subprocess.Popen:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
           "ANTHROPIC_WORK_ID": item.id, "ANTHROPIC_ENVIRONMENT_ID": cp.env_id, "ANTHROPIC_SESSION_ID": item.data.id,
           "ANTHROPIC_ENVIRONMENT_KEY": ENV_KEY, "ANTHROPIC_BASE_URL": url,
           "OMNIRUN_API_URL": API_URL, "OMNIRUN_API_KEY": API_KEY, "OMNIRUN_CLAUDE_PYTHON": sys.executable,
           "OMNIRUN_CLAUDE_TEMPLATE": TEMPLATE, "OMNIRUN_CLAUDE_IDLE_SECONDS": "1",
           "OMNIRUN_CLAUDE_LOG_LEVEL": "debug", "UNRELATED_TOKEN": "must-not-be-forwarded"}
    out = open(log, "ab")
    p = subprocess.Popen(["bash", str(SPAWN)], env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
    assert p.stdin is not None
    p.stdin.write(item.to_json().encode())
    p.stdin.close()
    return p


def test_spawn_sh_follows_ants_script_contract(plane):
    cp, url = plane
    log = LOGS / "spawn.log"
    LOG_FILES.append(log)
    s = cp.create_session([bash("echo spawned > made.txt && echo ok"), read("made.txt")])
    item = _ant_claims(cp, url)
    track(cp.items_for(s)[0])
    assert item.data.id == s.id and item.secret
    p = _run_spawn(cp, url, item, log)
    # It replaced itself with the worker, whose environment holds only the allow-list.
    wait_for(lambda: b"omnirun_claude_worker" in Path(f"/proc/{p.pid}/cmdline").read_bytes(), 30, "the exec")
    names = {kv.split(b"=", 1)[0].decode() for kv in Path(f"/proc/{p.pid}/environ").read_bytes().split(b"\0") if kv}
    assert "UNRELATED_TOKEN" not in names
    assert names <= {"PATH", "HOME", "LANG", "ANTHROPIC_WORK_ID", "ANTHROPIC_ENVIRONMENT_ID", "ANTHROPIC_SESSION_ID",
                     "ANTHROPIC_ENVIRONMENT_KEY", "ANTHROPIC_BASE_URL", "OMNIRUN_API_URL", "OMNIRUN_API_KEY",
                     "OMNIRUN_CLAUDE_PYTHON", "OMNIRUN_CLAUDE_TEMPLATE", "OMNIRUN_CLAUDE_IDLE_SECONDS",
                     "OMNIRUN_CLAUDE_LOG_LEVEL", "PWD", "SHLVL", "_", "LC_CTYPE"}, names  # the last four: bash's, Python's
    # It blocks for the session: it ends only once the turn is over.
    assert p.wait(300) == 0
    assert results(s) == [("bash", False, "ok\n"), ("read", False, "spawned\n")]
    assert len(session_sandboxes(s.id)["paused"]) == 1

    # The next turn through ant again, cut by SIGTERM: the script is gone within 30 s and
    # the sandbox does not run on.
    cp.follow_up(s, [bash("touch /tmp/started; sleep 120")])
    item2 = _ant_claims(cp, url)
    track(cp.items_for(s)[1])
    p = _run_spawn(cp, url, item2, log)
    box = wait_for(lambda: session_sandboxes(s.id)["running"], 180, "the resumed sandbox")[0]
    wait_for(lambda: guest_file_exists(box, "/tmp/started"), 120, "the tool call to run")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    p.wait(40)
    elapsed = time.monotonic() - t0
    assert elapsed < 30, f"spawn.sh took {elapsed:.1f}s to stop after SIGTERM"
    assert session_sandboxes(s.id)["running"] == []


def test_no_secret_in_any_log():
    """Last: every log the worker and spawn.sh wrote in this run (at debug level, so with
    the package's and httpx's request logs) holds none of the secrets."""
    assert LOG_FILES, "no logs were written"
    texts = {p.name: p.read_text(errors="replace") for p in LOG_FILES if p.exists()}
    assert any("claimed" in t or "session sandbox" in t for t in texts.values())
    # The worker logs each work item at debug level, secret included: the filter caught it.
    assert all("[redacted]" in t for t in texts.values()), [n for n, t in texts.items() if "[redacted]" not in t]
    secrets = [s for s in SECRETS if s]
    assert len(secrets) >= 4
    for name, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret is in {name}"


def test_redaction_filter_scrubs_known_secrets():
    import logging
    from omnirun_claude_worker.config import RedactSecrets
    f = RedactSecrets()
    f.add("top-secret-value")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "auth %s end", ("Bearer top-secret-value",), None)
    assert f.filter(record) and record.getMessage() == "auth Bearer [redacted] end"


def test_systemd_unit_covers_the_drain():
    unit = (HERE.parent.parent.parent / "packaging" / "claude-worker.service").read_text()
    values = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert values["KillSignal"] == "SIGTERM"
    drain = float(values["Environment"].split("OMNIRUN_CLAUDE_DRAIN_SECONDS=", 1)[1])
    # the drain, then the pauses of the sessions still running (60 s each, in parallel)
    assert float(values["TimeoutStopSec"]) >= drain + 60
    assert "omnirun_claude_worker run" in values["ExecStart"]
