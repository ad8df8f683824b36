"""The control plane with the sync `e2b.Sandbox`: create with metadata and envs, get_info,
list (and its metadata and state filters), set_timeout, pause and resume through connect,
kill, and the errors of unknown sandboxes and keys."""
import datetime as dt
import os
import uuid

import pytest
from e2b import (
    AuthenticationException,
    Sandbox,
    SandboxException,
    SandboxNotFoundException,
    SandboxQuery,
    SandboxState,
)

from conftest import ENVD_VERSION, RUN_ID, SANDBOX_TIMEOUT, kill_quietly, wait_until

TAG = f"lifecycle-{RUN_ID}"
# A value with a space, `=`, `&` and `%`: the SDK percent-encodes the list filter's keys and
# values, then URL-encodes the `k=v&…` string, which httpx encodes once more as the
# `metadata` query parameter.
SPECIAL = "a b=c&d 100%"
META = {"e2b-suite": RUN_ID, "purpose": TAG, "special": SPECIAL}
ENVS = {"SBX_LEVEL": "from create", "SECOND": "2"}


@pytest.fixture(scope="module")
def sbx():
    sandbox = Sandbox.create(timeout=SANDBOX_TIMEOUT, metadata=META, envs=ENVS)
    yield sandbox
    kill_quietly(sandbox)


def test_create_and_get_info(sbx):
    assert sbx.sandbox_id
    # E2B_SANDBOX_URL serves every sandbox (the id travels in a header).
    assert sbx.envd_api_url == os.environ["E2B_SANDBOX_URL"]
    info = sbx.get_info()
    assert info.sandbox_id == sbx.sandbox_id
    assert info.state == SandboxState.RUNNING
    assert info.metadata == META
    assert info.envd_version == ENVD_VERSION
    assert info.cpu_count >= 1
    assert info.memory_mb >= 128
    assert info.template_id
    assert info.started_at <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    assert info.end_at > info.started_at
    # The class-level form of the same call.
    assert Sandbox.get_info(sbx.sandbox_id).sandbox_id == sbx.sandbox_id
    assert sbx.is_running() is True


def test_create_envs_reach_commands(sbx):
    assert sbx.commands.run("echo $SBX_LEVEL-$SECOND").stdout == "from create-2\n"
    # A command's own envs win over the sandbox's.
    assert sbx.commands.run("echo $SECOND", envs={"SECOND": "mine"}).stdout == "mine\n"


def test_list_contains_sandbox(sbx):
    paginator = Sandbox.list()
    found = []
    while paginator.has_next:
        found.extend(paginator.next_items())
    ours = [s for s in found if s.sandbox_id == sbx.sandbox_id]
    assert len(ours) == 1
    assert ours[0].state == SandboxState.RUNNING
    assert ours[0].metadata == META
    assert ours[0].envd_version == ENVD_VERSION


def test_list_metadata_filter(sbx):
    items = Sandbox.list(query=SandboxQuery(metadata={"purpose": TAG})).next_items()
    assert [s.sandbox_id for s in items] == [sbx.sandbox_id]
    none = Sandbox.list(query=SandboxQuery(metadata={"purpose": f"other-{uuid.uuid4()}"})).next_items()
    assert none == []
    both = Sandbox.list(query=SandboxQuery(metadata={"purpose": TAG, "e2b-suite": RUN_ID})).next_items()
    assert [s.sandbox_id for s in both] == [sbx.sandbox_id]


def test_list_metadata_filter_special_characters(sbx):
    items = Sandbox.list(query=SandboxQuery(metadata={"special": SPECIAL})).next_items()
    assert [s.sandbox_id for s in items] == [sbx.sandbox_id]


def test_list_state_filter(sbx):
    running = Sandbox.list(query=SandboxQuery(state=[SandboxState.RUNNING], metadata={"purpose": TAG})).next_items()
    assert [s.sandbox_id for s in running] == [sbx.sandbox_id]
    paused = Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED], metadata={"purpose": TAG})).next_items()
    assert paused == []


def test_list_pages(sbx):
    paginator = Sandbox.list(limit=1, query=SandboxQuery(metadata={"e2b-suite": RUN_ID}))
    first = paginator.next_items()
    assert len(first) <= 1


def test_set_timeout(sbx):
    sbx.set_timeout(1200)
    end_at = sbx.get_info().end_at
    remaining = (end_at - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 1100 < remaining <= 1210, remaining
    Sandbox.set_timeout(sbx.sandbox_id, SANDBOX_TIMEOUT)
    remaining = (sbx.get_info().end_at - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert SANDBOX_TIMEOUT - 100 < remaining <= SANDBOX_TIMEOUT + 10, remaining


def test_get_metrics(sbx):
    metrics = sbx.get_metrics()
    assert isinstance(metrics, list)
    for m in metrics:
        assert m.cpu_count >= 1
        assert m.mem_total > 0


def test_pause_and_resume_through_connect():
    sandbox = Sandbox.create(timeout=SANDBOX_TIMEOUT, metadata={"e2b-suite": RUN_ID, "purpose": "pause"})
    try:
        sandbox.files.write("/home/user/kept.txt", "still here")
        sleeper = sandbox.commands.run("sleep 900", background=True)
        sleeper.disconnect()
        assert sandbox.pause() is True
        info = Sandbox.get_info(sandbox.sandbox_id)
        assert info.state == SandboxState.PAUSED
        paused = Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED], metadata={"e2b-suite": RUN_ID})).next_items()
        assert sandbox.sandbox_id in [s.sandbox_id for s in paused]
        # Pausing a paused sandbox answers 409, which the SDK reports as False.
        assert Sandbox.pause(sandbox.sandbox_id) is False
        # A resume without memory (a reboot) is not offered: 501, and it stays paused.
        _unsupported(lambda: Sandbox.connect(sandbox.sandbox_id, on_resume="reboot"), "reboot", "memory")
        assert Sandbox.get_info(sandbox.sandbox_id).state == SandboxState.PAUSED

        resumed = Sandbox.connect(sandbox.sandbox_id)
        assert resumed.sandbox_id == sandbox.sandbox_id
        assert Sandbox.get_info(sandbox.sandbox_id).state == SandboxState.RUNNING
        assert resumed.files.read("/home/user/kept.txt") == "still here"
        assert resumed.commands.run("echo back").stdout == "back\n"
        # The memory came back too: the process started before the pause still runs.
        assert any(p.pid == sleeper.pid for p in resumed.commands.list())
        # connect on a running sandbox is a no-op that answers the same sandbox.
        assert sandbox.connect().sandbox_id == sandbox.sandbox_id
    finally:
        kill_quietly(sandbox)


def test_kill_then_calls_fail():
    sandbox = Sandbox.create(timeout=SANDBOX_TIMEOUT, metadata={"e2b-suite": RUN_ID, "purpose": "kill"})
    sandbox_id = sandbox.sandbox_id
    assert sandbox.commands.run("true").exit_code == 0
    assert sandbox.kill() is True
    assert sandbox.is_running() is False
    # Unknown to the control plane from now on.
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info(sandbox_id)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sandbox_id)
    with pytest.raises(SandboxNotFoundException):
        sandbox.set_timeout(60)
    assert Sandbox.kill(sandbox_id) is False
    assert sandbox_id not in [s.sandbox_id for s in Sandbox.list(query=SandboxQuery(metadata={"e2b-suite": RUN_ID})).next_items()]
    # The sandbox URL answers 502 "... was not found": SandboxNotRunningException, whose
    # message names the sandbox, for commands and files alike.
    from e2b import SandboxNotRunningException
    with pytest.raises(SandboxNotRunningException):
        sandbox.commands.run("true")
    with pytest.raises(SandboxNotRunningException):
        sandbox.files.read("/home/user/anything.txt")
    with pytest.raises(SandboxNotRunningException):
        sandbox.files.list("/home/user")


def test_context_manager_kills():
    with Sandbox.create(timeout=SANDBOX_TIMEOUT, metadata={"e2b-suite": RUN_ID, "purpose": "with"}) as sandbox:
        assert sandbox.commands.run("echo inside").stdout == "inside\n"
        sandbox_id = sandbox.sandbox_id
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info(sandbox_id)


def test_unknown_sandbox():
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info("no-such-sandbox")
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect("no-such-sandbox")
    assert Sandbox.kill("no-such-sandbox") is False


def test_other_account_sees_nothing(sbx):
    other = os.environ.get("E2B_TEST_OTHER_KEY")
    if not other:
        pytest.skip("E2B_TEST_OTHER_KEY (a key of another account) is not set")
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info(sbx.sandbox_id, api_key=other)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sbx.sandbox_id, api_key=other)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.set_timeout(sbx.sandbox_id, 30, api_key=other)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.pause(sbx.sandbox_id, api_key=other)
    assert Sandbox.kill(sbx.sandbox_id, api_key=other) is False
    assert sbx.sandbox_id not in [s.sandbox_id for s in Sandbox.list(api_key=other).next_items()]
    # Untouched by all of that.
    assert sbx.get_info().state == SandboxState.RUNNING
    assert sbx.commands.run("echo still").stdout == "still\n"


def test_bad_api_key():
    with pytest.raises(AuthenticationException):
        Sandbox.create(api_key="e2b_not-a-key-of-this-server")
    with pytest.raises(AuthenticationException):
        Sandbox.list(api_key="e2b_not-a-key-of-this-server").next_items()


def test_unknown_template():
    with pytest.raises(SandboxException) as info:
        Sandbox.create("no-such-template-here", timeout=60)
    assert "no-such-template-here" in str(info.value) or "404" in str(info.value) or "400" in str(info.value), info.value


# What the endpoint does not offer answers 501 with a message naming it; the SDK raises
# SandboxException("501: ...") and nothing is created or changed.

def _unsupported(call, *words):
    with pytest.raises(SandboxException) as info:
        call()
    text = str(info.value)
    assert text.startswith("501: "), text
    assert any(w.lower() in text.lower() for w in words), text
    return text


def test_unsupported_fork(sbx):
    _unsupported(lambda: sbx.fork(), "fork")


def test_unsupported_snapshots(sbx):
    _unsupported(lambda: sbx.create_snapshot(), "snapshot")
    _unsupported(lambda: Sandbox.list_snapshots().next_items(), "snapshot")


def test_unsupported_network_update(sbx):
    _unsupported(lambda: sbx.update_network({"deny_out": ["0.0.0.0/0"]}), "network")


def test_unsupported_create_options():
    marker = {"e2b-suite": RUN_ID, "purpose": "unsupported"}
    _unsupported(lambda: Sandbox.create(timeout=60, metadata=marker, network={"deny_out": ["10.0.0.0/8"]}), "network")
    _unsupported(lambda: Sandbox.create(timeout=60, metadata=marker,
                                        lifecycle={"on_timeout": "pause", "auto_resume": True}), "autoResume", "resume")
    assert Sandbox.list(query=SandboxQuery(metadata=marker)).next_items() == []
