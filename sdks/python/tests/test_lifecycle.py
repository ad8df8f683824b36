"""Lifecycle, errors and account features with the blocking client."""
import os
import pathlib
import re
import uuid

import pytest

from omnirun import (RateLimitError, Sandbox, SandboxError, SandboxNotFoundError, Vault,
                     Webhooks)

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_lifecycle_list_connect_kill():
    tag = uuid.uuid4().hex[:8]
    sbx = Sandbox.create("playground", timeout=120, metadata={"suite": "python", "tag": tag})
    try:
        assert re.fullmatch(r"sb_[A-Za-z0-9]+", sbx.sandbox_id)
        info = sbx.get_info()
        assert info.sandbox_id == sbx.sandbox_id and info.state == "running" and info.template_id == "playground"
        assert info.metadata == {"suite": "python", "tag": tag}
        assert sbx.is_running()
        listed = Sandbox.list(metadata={"tag": tag})
        assert [s.sandbox_id for s in listed] == [sbx.sandbox_id]
        assert sbx.sandbox_id in [s.sandbox_id for s in Sandbox.list(limit=100)]
        pages = Sandbox.paginate(limit=1, metadata={"suite": "python"})
        seen = []
        while pages.has_next:
            seen += [s.sandbox_id for s in pages.next_items()]
        assert sbx.sandbox_id in seen
        sbx.set_timeout(300)
        again = Sandbox.connect(sbx.sandbox_id)
        assert again.commands.run("echo connected").stdout == "connected\n"
        assert sbx.get_host(8080) == f"https://{sbx.sandbox_id}-8080.omnirun-preview.dev"
    finally:
        sbx.kill()
    assert not sbx.is_running()
    with pytest.raises(SandboxNotFoundError):
        sbx.get_info()
    with pytest.raises(SandboxNotFoundError):
        Sandbox.connect(sbx.sandbox_id)


def test_context_manager_kills():
    with Sandbox.create("playground", timeout=60) as sbx:
        assert sbx.commands.run("true").exit_code == 0
    assert not sbx.is_running()


def test_bad_key_and_unknown_template():
    with pytest.raises(SandboxError) as caught:
        Sandbox.list(api_key="omr_not_a_key")
    assert caught.value.status == 401
    with pytest.raises(SandboxError) as caught:
        Sandbox.create("no-such-template")
    assert caught.value.status in (400, 404) and "no-such-template" in str(caught.value)


def test_fourth_sandbox_is_rate_limited():
    key = os.environ["OMNIRUN_TEST_LIMIT_KEY"]
    running = []
    try:
        for _ in range(3):
            running.append(Sandbox.create("playground", timeout=120, api_key=key))
        with pytest.raises(RateLimitError) as caught:
            Sandbox.create("playground", timeout=120, api_key=key)
        assert caught.value.status == 429 and "limit" in str(caught.value)
        assert len(Sandbox.list(api_key=key)) == 3
    finally:
        for sbx in running:
            sbx.kill()


def test_internet_sandbox_with_a_live_policy():
    # Nothing here leaves the host: the probed address is refused inside the sandbox's own namespace.
    with Sandbox.create("playground", timeout=120, internet=True) as sbx:
        assert "eth0" in sbx.commands.run("ls /sys/class/net").stdout
        assert "nameserver 10.0.2.2" in sbx.commands.run("cat /etc/resolv.conf").stdout
        sbx.set_network_policy({"allowIPs": ["198.51.100.7"]})
        probe = ("python3 -c \"import socket\ntry:\n socket.create_connection(('203.0.113.9', 443), timeout=3); print('open')\n"
                 "except OSError as e: print('refused', e)\"")
        assert sbx.commands.run(probe).stdout.startswith("refused")


def test_secure_and_auto_pause_creates():
    with Sandbox.create("playground", timeout=60, secure=True, auto_pause=True) as sbx:
        assert sbx.commands.run("echo ok").stdout == "ok\n"


def test_e2ee_bodies_sealed_and_bound_to_their_request():
    # Every POST body is sealed with aad "<METHOD> <target>" and every answer's aad is checked
    # ("response <METHOD> <target>"), query included: a space in a path travels as "+".
    with Sandbox.create("playground", timeout=120, e2ee=True) as sbx:
        assert sbx.commands.run("echo sealed").stdout == "sealed\n"
        sbx.files.write("/tmp/e2ee dir/a b.txt", "secret text")
        assert sbx.files.read("/tmp/e2ee dir/a b.txt") == "secret text"
        assert [e.name for e in sbx.files.list("/tmp/e2ee dir")] == ["a b.txt"]
        # A client without the key (connect) reads plaintext answers and cannot act: a clear 400.
        other = Sandbox.connect(sbx.sandbox_id)
        assert other.files.read("/tmp/e2ee dir/a b.txt") == "secret text"
        with pytest.raises(SandboxError) as caught:
            other.commands.run("touch /tmp/keyless")
        assert caught.value.status == 400 and "can read this sandbox but not act in it" in str(caught.value)


def test_webhooks_list_and_refuse_loopback():
    hooks = Webhooks()
    assert isinstance(hooks.list(), list)
    # The server refuses its own loopback addresses unless configured to allow them.
    with pytest.raises(SandboxError) as caught:
        hooks.create("http://127.0.0.1:9/hook", ["created"])
    assert caught.value.status == 400


def test_vault_and_inject():
    vault = Vault()
    name = "SDK_SECRET_" + uuid.uuid4().hex[:6].upper()
    vault.set(name, "s3cr3t value")
    try:
        assert name in [c.key for c in vault.list()]
        with Sandbox.create("playground", timeout=60, vault_inject=True) as sbx:
            assert sbx.commands.run(f"echo ${name}").stdout == "s3cr3t value\n"
        with Sandbox.create("playground", timeout=60, env_vars={"FROM_CREATE": "yes"}) as sbx:
            assert sbx.commands.run(f"echo ${{{name}:-absent}} $FROM_CREATE").stdout == "absent yes\n"
    finally:
        vault.delete(name)
    assert name not in [c.key for c in vault.list()]


def test_readme_quick_start_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python examples"
    for block in blocks:
        if "asyncio" in block:
            continue  # the async example runs in test_async.py
        exec(compile(block, str(README), "exec"), {})
